//! The request's audit scope as an axum extractor, for the authentication step that learns
//! who is acting after the layer opened the scope.

use audit_runtime::{Actor, AuditScope, SharedScope};
use axum::extract::FromRequestParts;
use http::StatusCode;
use http::request::Parts;

/// The audit scope of the current request (opened by
/// [`AuditHttpLayer`](crate::AuditHttpLayer)). Setting the actor or tenant here applies to
/// every event recorded for the rest of the request, in the handler and in code it calls.
///
/// ```
/// use audit::{Actor, AuthMethod};
/// use audit_http::RequestAudit;
///
/// // An authentication middleware or extractor, after checking the session:
/// async fn authenticated(audit: RequestAudit) {
///     audit.set_actor(Actor::user("usr_123", AuthMethod::Session));
///     audit.set_tenant("acme");
/// }
/// # drop(authenticated);
/// ```
#[derive(Clone, Debug)]
pub struct RequestAudit(SharedScope);

impl RequestAudit {
    pub(crate) fn new(shared: SharedScope) -> Self {
        RequestAudit(shared)
    }

    /// The request's scope in the current task (inside the layer), without an extractor.
    pub fn current() -> Option<Self> {
        SharedScope::current().map(RequestAudit)
    }

    /// Who is acting, for the rest of the request.
    pub fn set_actor(&self, actor: Actor) {
        self.0.set_actor(actor);
    }

    /// For which tenant (and so in which chain), for the rest of the request.
    pub fn set_tenant(&self, tenant: impl Into<String>) {
        self.0.set_tenant(tenant);
    }

    /// A context member, for the rest of the request.
    pub fn set_context(&self, key: &str, value: impl Into<String>) {
        self.0.set_context(key, value);
    }

    /// The scope as it stands.
    pub fn scope(&self) -> AuditScope {
        self.0.scope()
    }

    /// The shared scope itself.
    pub fn shared(&self) -> &SharedScope {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestAudit {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<RequestAudit>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "the audit layer (audit::http::AuditHttpLayer) is not installed on this route",
        ))
    }
}
