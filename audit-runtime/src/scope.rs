//! The ambient audit scope: actor, tenant and request context set once per request and
//! picked up by every event recorded inside it, across `.await` points.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::event::{Actor, Context};

thread_local! {
    static CURRENT: RefCell<Option<AuditScope>> = const { RefCell::new(None) };
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ScopeData {
    pub actor: Option<Actor>,
    pub tenant: Option<String>,
    pub context: Context,
}

/// Who is acting, for which tenant, and from where: set once per request (typically by
/// middleware) and inherited by every event recorded while it is entered.
///
/// Cloning is cheap (one reference count). Events copy nothing from it on the calling
/// thread: the writer reads it when it builds the record.
///
/// ```
/// use audit_runtime::{Actor, AuditScope, AuthMethod};
///
/// let scope = AuditScope::new()
///     .actor(Actor::user("usr_123", AuthMethod::Sso))
///     .tenant("acme")
///     .context("ip", "203.0.113.7")
///     .context("request_id", "req_9f2c");
/// scope.in_scope(|| {
///     let current = AuditScope::current().expect("entered");
///     assert_eq!(current.tenant_name(), Some("acme"));
/// });
/// assert!(AuditScope::current().is_none());
/// ```
///
/// In async code, wrap the request's future so the scope follows it across `.await` and
/// across threads of a work-stealing runtime; carry it into spawned tasks explicitly:
///
/// ```
/// use audit_runtime::{AuditScope, WithAuditScope};
///
/// # async fn handler() {}
/// # fn spawn<F: std::future::Future>(_: F) {}
/// async fn request() {
///     handler().await; // events in here see the scope
///     // A spawned task does not inherit thread-locals: hand it the current scope.
///     spawn(handler().in_current_audit_scope());
/// }
/// let fut = request().with_audit_scope(AuditScope::new().tenant("acme"));
/// # drop(fut);
/// ```
#[derive(Clone, Debug, Default)]
pub struct AuditScope(pub(crate) Arc<ScopeData>);

impl AuditScope {
    /// An empty scope.
    pub fn new() -> Self {
        AuditScope::default()
    }

    /// A scope starting from the current one (if any), to refine it for a sub-operation.
    pub fn inherit() -> Self {
        AuditScope::current().unwrap_or_default()
    }

    /// The scope entered on this thread or task, if any.
    pub fn current() -> Option<AuditScope> {
        CURRENT.with(|c| c.borrow().clone())
    }

    fn data_mut(&mut self) -> &mut ScopeData {
        Arc::make_mut(&mut self.0)
    }

    /// Sets the actor.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.data_mut().actor = Some(actor);
        self
    }

    /// Sets the tenant (and so the chain events are written to).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.data_mut().tenant = Some(tenant.into());
        self
    }

    /// Sets a context member (`ip`, `user_agent`, `request_id`, `session_id`, `trace_id`, or a
    /// free key).
    pub fn context(mut self, key: &str, value: impl Into<String>) -> Self {
        self.data_mut().context.set(key, value);
        self
    }

    /// The actor, if set.
    pub fn actor_ref(&self) -> Option<&Actor> {
        self.0.actor.as_ref()
    }

    /// The tenant, if set.
    pub fn tenant_name(&self) -> Option<&str> {
        self.0.tenant.as_deref()
    }

    /// The context members.
    pub fn context_ref(&self) -> &Context {
        &self.0.context
    }

    /// Runs `f` with this scope entered.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.enter();
        f()
    }

    /// Enters this scope on the current thread until the guard drops. Do not hold the guard
    /// across `.await`; use [`WithAuditScope::with_audit_scope`] for futures.
    pub fn enter(&self) -> ScopeGuard {
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        ScopeGuard {
            previous,
            _not_send: std::marker::PhantomData,
        }
    }
}

/// Restores the previous scope when dropped. Not `Send`: a scope is entered per thread.
#[must_use = "the scope is left as soon as the guard drops"]
pub struct ScopeGuard {
    previous: Option<AuditScope>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

pin_project_lite::pin_project! {
    /// A future that enters an [`AuditScope`] every time it is polled.
    #[derive(Debug)]
    pub struct Scoped<F> {
        #[pin]
        inner: F,
        scope: Option<AuditScope>,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        match this.scope {
            Some(scope) => {
                let _guard = scope.enter();
                this.inner.poll(cx)
            }
            None => this.inner.poll(cx),
        }
    }
}

/// Attaches an [`AuditScope`] to a future, like `tracing::Instrument` does for spans.
pub trait WithAuditScope: Future + Sized {
    /// Polls this future inside `scope`.
    fn with_audit_scope(self, scope: AuditScope) -> Scoped<Self> {
        Scoped {
            inner: self,
            scope: Some(scope),
        }
    }

    /// Polls this future inside the scope current now: use it for `tokio::spawn`ed tasks,
    /// which do not inherit the caller's thread-local scope.
    fn in_current_audit_scope(self) -> Scoped<Self> {
        Scoped {
            inner: self,
            scope: AuditScope::current(),
        }
    }
}

impl<F: Future> WithAuditScope for F {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_scopes_restore_the_outer_one() {
        let outer = AuditScope::new().tenant("outer");
        outer.in_scope(|| {
            let inner = AuditScope::inherit().context("request_id", "r1");
            assert_eq!(inner.tenant_name(), Some("outer"));
            inner.in_scope(|| {
                assert_eq!(
                    AuditScope::current().unwrap().context_ref().request_id.as_deref(),
                    Some("r1")
                );
            });
            assert!(AuditScope::current().unwrap().context_ref().request_id.is_none());
        });
        assert!(AuditScope::current().is_none());
    }
}
