//! The audit event model (Contract 1 of DESIGN.md): who did what to which resource, when,
//! from where, and whether it worked.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::action::Action;

/// What kind of principal performed an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorType {
    /// A human user.
    User,
    /// Another service or an API client acting on its own behalf.
    Service,
    /// The system itself (scheduled jobs, migrations, retention).
    System,
}

/// How the actor authenticated for the request that performed the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Username and password.
    Password,
    /// Single sign-on (SAML, OIDC).
    Sso,
    /// A long-lived API key.
    ApiKey,
    /// Multi-factor authentication.
    Mfa,
    /// An existing session cookie.
    Session,
    /// A bearer token (JWT, OAuth access token).
    Token,
    /// No authentication (anonymous requests, internal jobs).
    None,
}

/// A reference to a principal, used for the impersonator of an [`Actor`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRef {
    /// Kind of principal.
    #[serde(rename = "type")]
    pub kind: ActorType,
    /// Stable identifier of the principal.
    pub id: String,
}

/// Who performed the action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Kind of principal.
    #[serde(rename = "type")]
    pub kind: ActorType,
    /// Stable identifier (`usr_123`), never an e-mail address that may change.
    pub id: String,
    /// How the actor authenticated.
    pub auth: AuthMethod,
    /// Display name, for humans reading the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The real principal when an administrator acts as somebody else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonator: Option<ActorRef>,
}

impl Actor {
    /// A human user authenticated by `auth`.
    pub fn user(id: impl Into<String>, auth: AuthMethod) -> Self {
        Self::new(ActorType::User, id, auth)
    }

    /// A service principal authenticated by `auth`.
    pub fn service(id: impl Into<String>, auth: AuthMethod) -> Self {
        Self::new(ActorType::Service, id, auth)
    }

    /// The system itself; `id` names the component (`retention`, `migrations`).
    pub fn system(id: impl Into<String>) -> Self {
        Self::new(ActorType::System, id, AuthMethod::None)
    }

    /// An actor of any kind.
    pub fn new(kind: ActorType, id: impl Into<String>, auth: AuthMethod) -> Self {
        Actor {
            kind,
            id: id.into(),
            auth,
            name: None,
            impersonator: None,
        }
    }

    /// Sets the display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Records that `impersonator` is acting as this actor.
    pub fn impersonated_by(mut self, kind: ActorType, id: impl Into<String>) -> Self {
        self.impersonator = Some(ActorRef { kind, id: id.into() });
        self
    }

    /// The actor recorded when neither the event nor the ambient scope names one.
    pub(crate) fn unknown() -> Self {
        Actor::system("unknown")
    }
}

pub use audit_vocab::Category;

/// The object acted upon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Kind of resource (`customer`, `invoice`): usually a literal, so it is not copied.
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    /// Identifier of the resource.
    pub id: String,
}

impl Resource {
    /// A resource of `kind` identified by `id`.
    pub fn new(kind: impl Into<Cow<'static, str>>, id: impl fmt::Display) -> Self {
        Resource {
            kind: kind.into(),
            id: id.to_string(),
        }
    }
}

/// Whether the action worked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// The action completed.
    Success,
    /// The action failed or was refused.
    Failure {
        /// Why, in words safe to show an auditor (no secrets).
        reason: String,
    },
}

impl Outcome {
    /// A failure with `reason`.
    pub fn failure(reason: impl Into<String>) -> Self {
        Outcome::Failure { reason: reason.into() }
    }

    /// True for [`Outcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }
}

/// Where the request came from. Every member is optional; an empty context is omitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Client IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Client user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Request id, as in the application's access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Session id (or a hash of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Distributed trace id, linking the event to application logs and traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Further key/values, serialized after the standard members in key order.
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

impl Context {
    /// True when no member is set.
    pub fn is_empty(&self) -> bool {
        self.ip.is_none()
            && self.user_agent.is_none()
            && self.request_id.is_none()
            && self.session_id.is_none()
            && self.trace_id.is_none()
            && self.extra.is_empty()
    }

    /// Sets a member by name: the standard names fill their fields, others go to `extra`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match key {
            "ip" => self.ip = Some(value),
            "user_agent" => self.user_agent = Some(value),
            "request_id" => self.request_id = Some(value),
            "session_id" => self.session_id = Some(value),
            "trace_id" => self.trace_id = Some(value),
            _ => {
                self.extra.insert(key.to_owned(), value);
            }
        }
    }

    /// Fills every member unset here from `other` (explicit values win over ambient ones).
    pub fn fill_from(&mut self, other: &Context) {
        fn fill(slot: &mut Option<String>, from: &Option<String>) {
            if slot.is_none() {
                slot.clone_from(from);
            }
        }
        fill(&mut self.ip, &other.ip);
        fill(&mut self.user_agent, &other.user_agent);
        fill(&mut self.request_id, &other.request_id);
        fill(&mut self.session_id, &other.session_id);
        fill(&mut self.trace_id, &other.trace_id);
        for (k, v) in &other.extra {
            self.extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// The state of a resource before and after a mutation. Sensitive fields are redacted at
/// capture (see [`REDACTED`]), so they never reach the log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    /// State before the change (absent for creates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// State after the change (absent for deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    /// Names of the fields an update changed, sorted (absent for creates and deletes, and
    /// when the capture did not compare the states).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl Changes {
    /// How deeply `before` and `after` may nest. Deeper values are cut at capture and marked,
    /// as long strings are: every record then reads back in every reader of the project
    /// (serde_json stops at 128 levels) and in Python's `json` (about 1,000), and no input can
    /// exhaust a thread's stack.
    pub const MAX_DEPTH: usize = 32;

    /// Cuts `before` and `after` below [`MAX_DEPTH`](Self::MAX_DEPTH) levels (see there).
    fn limit_depth(mut self) -> Self {
        for value in [&mut self.before, &mut self.after].into_iter().flatten() {
            limit_depth(value, Self::MAX_DEPTH);
        }
        self
    }
}

/// Replaces every array or object nested `max` levels below `value` by a string saying how
/// deep it went. Iterative, so any depth is safe on any stack.
fn limit_depth(value: &mut serde_json::Value, max: usize) {
    use serde_json::Value;
    let mut stack: Vec<(&mut Value, usize)> = vec![(value, 1)];
    while let Some((value, depth)) = stack.pop() {
        let nested = match value {
            Value::Array(items) => !items.is_empty(),
            Value::Object(members) => !members.is_empty(),
            _ => false,
        };
        if !nested {
            continue;
        }
        if depth >= max {
            let cut = std::mem::replace(value, Value::Null);
            let below = drop_counting_depth(cut);
            *value = Value::String(format!("…[truncated: {below} more levels of nesting]"));
            continue;
        }
        match value {
            Value::Array(items) => stack.extend(items.iter_mut().map(|v| (v, depth + 1))),
            Value::Object(members) => stack.extend(members.values_mut().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
}

/// Drops a value without recursion (a deep one would overflow the stack on the way down) and
/// returns how many levels it had.
fn drop_counting_depth(value: serde_json::Value) -> usize {
    use serde_json::Value;
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((value, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match value {
            Value::Array(items) => stack.extend(items.into_iter().map(|v| (v, depth + 1))),
            Value::Object(members) => stack.extend(members.into_iter().map(|(_, v)| (v, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// The value written in place of a redacted field.
pub const REDACTED: &str = "[redacted]";

/// One audit event as the application describes it, before the writer gives it an id, a
/// chain position and a hash. Build one with [`AuditEvent::new`] and send it with
/// [`AuditEvent::emit`](crate::AuditEvent::emit).
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub(crate) timestamp: Timestamp,
    pub(crate) action: Cow<'static, str>,
    pub(crate) category: Category,
    pub(crate) actor: Option<Actor>,
    pub(crate) resource: Option<Resource>,
    pub(crate) outcome: Outcome,
    pub(crate) context: Context,
    pub(crate) tenant: Option<String>,
    pub(crate) changes: Option<Changes>,
    pub(crate) id: Option<uuid::Uuid>,
    /// The action and category come from the vocabulary already (a typed [`Action`]).
    pub(crate) checked: bool,
}

impl AuditEvent {
    /// A successful `action` of `category`, timestamped now. Actor, tenant and context not set
    /// here are taken from the ambient [`AuditScope`](crate::AuditScope) when emitted.
    ///
    /// The action is checked when the event is emitted against the vocabulary compiled into
    /// the binary, if one is installed (see [`install_vocabulary`](crate::install_vocabulary)):
    /// prefer [`AuditEvent::of`] with `audit::action!`, checked at compile time.
    pub fn new(action: impl Into<Cow<'static, str>>, category: Category) -> Self {
        AuditEvent {
            timestamp: Timestamp::now(),
            action: action.into(),
            category,
            actor: None,
            resource: None,
            outcome: Outcome::Success,
            context: Context::default(),
            tenant: None,
            changes: None,
            id: None,
            checked: false,
        }
    }

    /// A successful event of a typed action, whose name and category the vocabulary gave at
    /// compile time (`audit::action!("user.login")`), timestamped now.
    pub fn of(action: Action) -> Self {
        AuditEvent {
            checked: true,
            ..AuditEvent::new(action.name(), action.category())
        }
    }

    /// Marks the action as checked against the vocabulary already, for events replayed from
    /// where they were checked when they happened (an outbox relay): the emit-time check is
    /// skipped. Anything else should use [`AuditEvent::of`] with `audit::action!`.
    pub fn assume_checked(mut self) -> Self {
        self.checked = true;
        self
    }

    /// Fixes the event's id (a UUIDv7) instead of letting the writer assign one: an outbox
    /// relay uses it to deliver each event exactly once.
    pub fn with_id(mut self, id: uuid::Uuid) -> Self {
        self.id = Some(id);
        self
    }

    /// The id fixed with [`with_id`](Self::with_id), if any.
    pub fn fixed_id(&self) -> Option<uuid::Uuid> {
        self.id
    }

    /// Sets the actor, overriding the ambient one.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Sets the resource acted upon.
    pub fn resource(mut self, kind: impl Into<Cow<'static, str>>, id: impl fmt::Display) -> Self {
        self.resource = Some(Resource::new(kind, id));
        self
    }

    /// Sets the resource acted upon from a [`Resource`] built earlier (by `#[audited]`,
    /// before the fn's body runs).
    #[inline]
    pub fn with_resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Marks the event as failed with `reason`.
    pub fn failure(self, reason: impl Into<String>) -> Self {
        self.outcome(Outcome::failure(reason))
    }

    /// Sets the tenant (and so the chain), overriding the ambient one.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets one context member (`ip`, `user_agent`, `request_id`, `session_id`, `trace_id`, or
    /// a free key), overriding the ambient value.
    pub fn context(mut self, key: &str, value: impl Into<String>) -> Self {
        self.context.set(key, value);
        self
    }

    /// Sets a context member from bytes of unknown encoding (a raw header, say): invalid
    /// UTF-8 is replaced by U+FFFD rather than rejected, so the event is never lost.
    pub fn context_bytes(self, key: &str, value: &[u8]) -> Self {
        let value = String::from_utf8_lossy(value).into_owned();
        self.context(key, value)
    }

    /// Records the state before and after a mutation (nested at most
    /// [`Changes::MAX_DEPTH`] levels; deeper parts are cut and marked).
    pub fn changes(self, before: Option<serde_json::Value>, after: Option<serde_json::Value>) -> Self {
        self.with_changes(Changes {
            before,
            after,
            fields: Vec::new(),
        })
    }

    /// Records a change as captured (before, after and the changed fields).
    pub fn with_changes(mut self, changes: Changes) -> Self {
        self.changes = Some(changes.limit_depth());
        self
    }

    /// Overrides the timestamp (imports of historical events, tests).
    pub fn at(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The chain the event goes to: its tenant, or [`DEFAULT_CHAIN`](crate::DEFAULT_CHAIN)
    /// when it names none (the ambient scope's tenant is filled in when it is emitted).
    pub fn chain_key(&self) -> &str {
        match self.tenant.as_deref() {
            Some(t) if !t.is_empty() => t,
            _ => crate::DEFAULT_CHAIN,
        }
    }

    /// The action name.
    pub fn action_name(&self) -> &str {
        &self.action
    }

    /// The category.
    pub fn category_of(&self) -> Category {
        self.category
    }

    /// The resource, if set.
    pub fn resource_of(&self) -> Option<&Resource> {
        self.resource.as_ref()
    }

    /// The outcome.
    pub fn outcome_of(&self) -> &Outcome {
        &self.outcome
    }

    /// The timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
}
