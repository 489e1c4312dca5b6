//! The ambient audit scope: actor, tenant and request context set once per request and
//! picked up by every event recorded inside it, across `.await` points.

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use crate::event::{Actor, AuditEvent, Changes, Context, Resource};

thread_local! {
    static CURRENT: RefCell<Option<AuditScope>> = const { RefCell::new(None) };
    static CURRENT_SHARED: RefCell<Option<SharedScope>> = const { RefCell::new(None) };
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
#[derive(Clone, Debug)]
pub struct AuditScope {
    pub(crate) data: Arc<ScopeData>,
    /// Where the audited call this scope belongs to collects changes (see
    /// [`AuditScope::offer_change`]).
    collector: Option<Arc<Collector>>,
}

impl Default for AuditScope {
    /// An empty scope. Costs no allocation: every empty scope shares one empty state.
    fn default() -> Self {
        static EMPTY: std::sync::LazyLock<Arc<ScopeData>> = std::sync::LazyLock::new(Arc::default);
        AuditScope {
            data: Arc::clone(&EMPTY),
            collector: None,
        }
    }
}

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
        Arc::make_mut(&mut self.data)
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
        self.data.actor.as_ref()
    }

    /// The tenant, if set.
    pub fn tenant_name(&self) -> Option<&str> {
        self.data.tenant.as_deref()
    }

    /// The context members.
    pub fn context_ref(&self) -> &Context {
        &self.data.context
    }

    /// This scope, collecting the change that audited operations run inside it offer (see
    /// [`offer_change`](Self::offer_change)): what `#[audited]` does around its fn's body, so
    /// that the fn's one event carries the change its body made. `resource_kind` is the
    /// resource type the call names, if any: only a change of that type is taken.
    pub fn collecting_changes(self, resource_kind: Option<Cow<'static, str>>) -> (AuditScope, ChangeSlot) {
        let slot = ChangeSlot::new(resource_kind);
        (self.collecting_into(&slot), slot)
    }

    /// This scope, collecting changes into `slot` (see
    /// [`collecting_changes`](Self::collecting_changes)).
    pub fn collecting_into(mut self, slot: &ChangeSlot) -> AuditScope {
        self.collector = Some(Arc::clone(slot.collector()));
        self
    }

    /// Whether an audited call collects changes in this scope (the code runs inside one).
    pub fn is_collecting(&self) -> bool {
        self.collector.is_some()
    }

    /// Whether two scopes belong to the same audited call (both collect into the same slot):
    /// an integration that captured a change in one call can tell whether the call running
    /// when the change is released is that one.
    pub fn same_call(&self, other: &AuditScope) -> bool {
        match (&self.collector, &other.collector) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Whether the current code runs inside an audited call (see
    /// [`collecting_changes`](Self::collecting_changes)), without cloning the scope.
    pub fn current_is_collecting() -> bool {
        CURRENT.with(|c| c.borrow().as_ref().is_some_and(|s| s.collector.is_some()))
    }

    /// For integrations that capture changes (audit-diesel): hands the change of `resource`
    /// to the audited call the current code runs in, which records it in its own event (one
    /// change, one record). Gives it back when no call takes it: outside any audited call,
    /// when the call holds a change already, or when it names another resource type; the
    /// integration then records its own event, as without `#[audited]`.
    // The change comes back by value when it is not taken: no copy and no allocation.
    #[allow(clippy::result_large_err)]
    pub fn offer_change(resource: Resource, changes: Changes) -> Result<(), (Resource, Changes)> {
        let collector = CURRENT.with(|c| c.borrow().as_ref().and_then(|s| s.collector.clone()));
        let Some(collector) = collector else {
            return Err((resource, changes));
        };
        if collector
            .resource_kind
            .as_ref()
            .is_some_and(|kind| *kind != resource.kind)
        {
            return Err((resource, changes));
        }
        let mut taken = collector.taken.lock().unwrap_or_else(|e| e.into_inner());
        if taken.is_some() || collector.closed.load(Ordering::Acquire) {
            return Err((resource, changes));
        }
        *taken = Some((resource, changes));
        collector.offered.store(true, Ordering::Release);
        Ok(())
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

/// Where an audited call finds the change collected for it (see
/// [`AuditScope::collecting_changes`]).
#[derive(Debug)]
pub struct ChangeSlot(Option<Arc<Collector>>);

thread_local! {
    // Slots of finished calls, for the next calls of this thread: a slot per audited call
    // would otherwise cost an allocation each.
    static SPARE_SLOTS: RefCell<Vec<Arc<Collector>>> = const { RefCell::new(Vec::new()) };
}

impl ChangeSlot {
    /// A slot for the change of a call on a resource of type `resource_kind` (any type when
    /// `None`).
    pub fn new(resource_kind: Option<Cow<'static, str>>) -> Self {
        let spare = SPARE_SLOTS.with(|s| s.borrow_mut().pop());
        match spare {
            Some(mut collector) => {
                let c = Arc::get_mut(&mut collector).expect("only spare slots nobody else holds");
                c.resource_kind = resource_kind;
                *c.closed.get_mut() = false;
                ChangeSlot(Some(collector))
            }
            None => ChangeSlot(Some(Arc::new(Collector {
                resource_kind,
                offered: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                taken: Mutex::new(None),
            }))),
        }
    }

    /// Makes the current scope (an empty one if none is entered) collect into this slot until
    /// the guard drops: what an audited call does around each run of its body. Cheaper than
    /// entering a scope of its own: nothing is cloned but the slot's handle.
    pub fn enter(&self) -> CollectGuard {
        let previous = CURRENT.with(|c| {
            let mut current = c.borrow_mut();
            let had_scope = current.is_some();
            let scope = current.get_or_insert_with(AuditScope::default);
            let collector = scope.collector.replace(Arc::clone(self.collector()));
            had_scope.then_some(collector)
        });
        CollectGuard {
            previous,
            _not_send: std::marker::PhantomData,
        }
    }

    fn collector(&self) -> &Arc<Collector> {
        self.0.as_ref().expect("a slot has its collector until it drops")
    }

    /// The change offered inside the call, if one was; from now on the slot takes no more
    /// (the call records its event).
    pub fn take(&self) -> Option<(Resource, Changes)> {
        let c = self.collector();
        c.closed.store(true, Ordering::Release);
        // A plain load first: most calls change nothing, and it costs less than the swap.
        if !c.offered.load(Ordering::Acquire) || !c.offered.swap(false, Ordering::Acquire) {
            return None;
        }
        c.taken.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for ChangeSlot {
    fn drop(&mut self) {
        // Nobody else holds it (no scope, no task): keep it for the next call of this thread.
        if let Some(collector) = self.0.take()
            && Arc::strong_count(&collector) == 1
            && !collector.offered.load(Ordering::Relaxed)
        {
            let _ = SPARE_SLOTS.try_with(|s| {
                let mut spare = s.borrow_mut();
                if spare.len() < 16 {
                    spare.push(collector);
                }
            });
        }
    }
}

/// Restores the collector the current scope had when dropped (see [`ChangeSlot::enter`]).
#[must_use = "the call's slot is left as soon as the guard drops"]
pub struct CollectGuard {
    /// The collector the current scope had, or `None` when no scope was entered at all.
    previous: Option<Option<Arc<Collector>>>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for CollectGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // The body may have entered other scopes and left them again: the one current now is
        // the one this guard changed.
        CURRENT.with(|c| {
            let mut current = c.borrow_mut();
            match previous {
                Some(collector) => {
                    if let Some(scope) = current.as_mut() {
                        scope.collector = collector;
                    }
                }
                None => *current = None,
            }
        });
    }
}

#[derive(Debug)]
struct Collector {
    resource_kind: Option<Cow<'static, str>>,
    /// Set once a change sits in `taken`: the common case (nothing offered) takes no lock.
    offered: AtomicBool,
    /// Set once the call recorded its event: a clone of its scope that outlives it (a task
    /// spawned in it) must not hand it a change nobody will read.
    closed: AtomicBool,
    taken: Mutex<Option<(Resource, Changes)>>,
}

/// A scope that the work running in it may still refine (the actor and tenant an
/// authentication step finds after a request's scope opened), and that can hold the event of
/// its outermost audited call until its owner knows how the work ended: an HTTP layer knows
/// the response's status only after the handler returned. Clones share it.
///
/// ```
/// use audit_runtime::{Actor, AuditScope, AuthMethod, SharedScope, WithAuditScope};
///
/// let request = SharedScope::new(AuditScope::new().context("request_id", "req_1"));
/// let work = async {
///     // The authentication step, inside the request's scope:
///     SharedScope::current().unwrap().set_actor(Actor::user("usr_1", AuthMethod::Sso));
///     AuditScope::current().unwrap().actor_ref().unwrap().id.clone()
/// };
/// let actor = futures_executor_block_on(work.with_shared_audit_scope(request.clone()));
/// assert_eq!(actor, "usr_1");
/// assert_eq!(request.scope().tenant_name(), None);
/// # fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SharedScope(Arc<SharedInner>);

#[derive(Debug)]
struct SharedInner {
    scope: Mutex<AuditScope>,
    /// Whether the owner settles held events (see [`SharedScope::holding`]).
    holds: bool,
    held: Mutex<Vec<HeldEvent>>,
    /// An event was emitted in this scope, or is held.
    recorded: AtomicBool,
}

/// The failure reason of an error that is an HTTP response whose status is not known yet:
/// [`SharedScope::settle`] replaces it with the status.
pub const RESPONSE_ERROR: &str = "an error response";

/// An event held in a [`SharedScope`] until its owner knows the status the work ended with.
#[derive(Debug)]
pub struct HeldEvent {
    /// The event, with the outcome its call had.
    pub event: AuditEvent,
    /// Which statuses make it a failure.
    pub failure_status: fn(u16) -> bool,
    /// The failure mode it is emitted with.
    pub mode: Option<crate::FailureMode>,
}

impl SharedScope {
    /// A shared scope starting as `scope`.
    pub fn new(scope: AuditScope) -> Self {
        Self::build(scope, false)
    }

    /// A shared scope whose owner settles the events of outermost audited calls with a
    /// status ([`settle`](Self::settle)): an HTTP layer.
    pub fn holding(scope: AuditScope) -> Self {
        Self::build(scope, true)
    }

    fn build(scope: AuditScope, holds: bool) -> Self {
        SharedScope(Arc::new(SharedInner {
            scope: Mutex::new(scope),
            holds,
            held: Mutex::new(Vec::new()),
            recorded: AtomicBool::new(false),
        }))
    }

    /// The shared scope the current code runs in, if any.
    pub fn current() -> Option<SharedScope> {
        CURRENT_SHARED.with(|c| c.borrow().clone())
    }

    /// The scope as it stands now.
    pub fn scope(&self) -> AuditScope {
        self.0.scope.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Refines the scope: events emitted from now on (here or in code it runs) see the change.
    pub fn update(&self, change: impl FnOnce(AuditScope) -> AuditScope) {
        let mut slot = self.0.scope.lock().unwrap_or_else(|e| e.into_inner());
        let old = slot.clone();
        *slot = change(old.clone());
        // Inside the work right now: the thread's entered scope changes with it.
        CURRENT.with(|c| {
            let mut current = c.borrow_mut();
            if let Some(entered) = current.as_mut().filter(|s| Arc::ptr_eq(&s.data, &old.data)) {
                // An audited call's collector stays with the scope it entered.
                entered.data = Arc::clone(&slot.data);
            }
        });
    }

    /// Sets the actor for the rest of the work.
    pub fn set_actor(&self, actor: Actor) {
        self.update(|s| s.actor(actor));
    }

    /// Sets the tenant (and so the chain) for the rest of the work.
    pub fn set_tenant(&self, tenant: impl Into<String>) {
        self.update(|s| s.tenant(tenant));
    }

    /// Sets a context member for the rest of the work.
    pub fn set_context(&self, key: &str, value: impl Into<String>) {
        self.update(|s| s.context(key, value));
    }

    /// Whether its owner settles held events.
    pub fn is_holding(&self) -> bool {
        self.0.holds
    }

    /// Whether an event was recorded in this scope (emitted or held).
    pub fn recorded(&self) -> bool {
        self.0.recorded.load(Ordering::Relaxed)
    }

    pub(crate) fn note_recorded(&self) {
        self.0.recorded.store(true, Ordering::Relaxed);
    }

    /// Holds `event` until [`settle`](Self::settle); gives it back when this scope does not
    /// hold events.
    // The event comes back by value when it is not held: no copy and no allocation.
    #[allow(clippy::result_large_err)]
    pub fn hold(&self, event: HeldEvent) -> Result<(), HeldEvent> {
        if !self.0.holds {
            return Err(event);
        }
        self.note_recorded();
        self.0.held.lock().unwrap_or_else(|e| e.into_inner()).push(event);
        Ok(())
    }

    /// Emits the held events: with `Some(status)`, an event whose status counts as a failure
    /// becomes one (`HTTP 403 Forbidden`, say) unless it failed already; with `None` (the work
    /// was abandoned), each keeps the outcome its call had.
    pub fn settle(&self, status: Option<(u16, &str)>) {
        let held = std::mem::take(&mut *self.0.held.lock().unwrap_or_else(|e| e.into_inner()));
        if held.is_empty() {
            return;
        }
        let scope = self.scope();
        scope.in_scope(|| {
            for HeldEvent {
                event,
                failure_status,
                mode,
            } in held
            {
                let event = match (status, event.outcome_of()) {
                    (Some((code, text)), outcome) if failure_status(code) => {
                        let status = format!("HTTP {code} {text}").trim_end().to_owned();
                        match outcome {
                            crate::Outcome::Failure { reason } if reason != RESPONSE_ERROR => {
                                let reason = format!("{reason} ({status})");
                                event.failure(reason)
                            }
                            _ => event.failure(status),
                        }
                    }
                    _ => event,
                };
                // Reported loudly by the runtime if undelivered; the work has happened.
                let _ = event.emit_with(mode.unwrap_or_else(crate::failure_mode));
            }
        });
    }
}

pin_project_lite::pin_project! {
    /// A future that enters a [`SharedScope`], as it stands, every time it is polled.
    #[derive(Debug)]
    pub struct SharedScoped<F> {
        #[pin]
        inner: F,
        shared: SharedScope,
    }
}

impl<F: Future> Future for SharedScoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let previous = CURRENT_SHARED.with(|c| c.replace(Some(this.shared.clone())));
        let result = {
            let _guard = this.shared.scope().enter();
            this.inner.poll(cx)
        };
        CURRENT_SHARED.with(|c| *c.borrow_mut() = previous);
        result
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

    /// Polls this future inside `shared`, as it stands at each poll.
    fn with_shared_audit_scope(self, shared: SharedScope) -> SharedScoped<Self> {
        SharedScoped { inner: self, shared }
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

#[cfg(test)]
mod collect_tests {
    use super::*;
    use crate::{AuthMethod, Category};

    fn change(kind: &'static str) -> (Resource, Changes) {
        (
            Resource::new(kind, "1"),
            Changes {
                before: Some(serde_json::json!({"plan": "free"})),
                after: Some(serde_json::json!({"plan": "pro"})),
                fields: vec!["plan".into()],
            },
        )
    }

    #[test]
    fn a_call_takes_one_change_of_its_resource_type() {
        assert!(
            AuditScope::offer_change(change("customer").0, change("customer").1).is_err(),
            "no call"
        );
        let slot = ChangeSlot::new(Some("customer".into()));
        {
            let _collect = slot.enter();
            assert!(AuditScope::current_is_collecting());
            let (r, c) = change("invoice");
            assert!(AuditScope::offer_change(r, c).is_err(), "another resource type");
            let (r, c) = change("customer");
            assert!(AuditScope::offer_change(r, c).is_ok());
            let (r, c) = change("customer");
            assert!(AuditScope::offer_change(r, c).is_err(), "one change per call");
        }
        assert!(AuditScope::current().is_none(), "the guard restores no scope at all");
        let (resource, changes) = slot.take().expect("taken");
        assert_eq!(
            (resource.kind.as_ref(), changes.fields),
            ("customer", vec!["plan".to_owned()])
        );
        assert!(slot.take().is_none());
    }

    #[test]
    fn a_shared_scope_is_refined_inside_the_work_and_keeps_the_collector() {
        let shared = SharedScope::holding(AuditScope::new().context("request_id", "r1"));
        let _entered = shared.scope().enter();
        let slot = ChangeSlot::new(None);
        let _collect = slot.enter();
        shared.set_actor(crate::Actor::user("usr_1", AuthMethod::Sso));
        let current = AuditScope::current().unwrap();
        assert_eq!(current.actor_ref().unwrap().id, "usr_1");
        assert_eq!(current.context_ref().request_id.as_deref(), Some("r1"));
        assert!(current.is_collecting(), "the call's collector stays");
        let event = AuditEvent::new("billing.update", Category::Mutation);
        assert!(
            shared
                .hold(HeldEvent {
                    event,
                    failure_status: |s| s >= 400,
                    mode: None
                })
                .is_ok()
        );
        assert!(shared.recorded());
        assert!(
            SharedScope::new(AuditScope::new())
                .hold(HeldEvent {
                    event: AuditEvent::new("billing.update", Category::Mutation),
                    failure_status: |s| s >= 400,
                    mode: None,
                })
                .is_err(),
            "only a holding scope holds"
        );
    }
}
