//! What the expansions of `#[audited]` and `#[derive(AuditModel)]` call. Not a public API:
//! reachable as `audit::__private`, hidden from the docs, and free to change in any release.

use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use audit_runtime::{
    Action, Actor, AuditError, AuditEvent, AuditModel, AuditScope, Category, ChangeSlot, CompiledVocabulary,
    FailureMode, HeldEvent, ModelAction, REDACTED, Resource, SharedScope, VocabularyEntry, ensure_sink, fingerprint,
};

pub use crate::http_support::*;
pub use serde::Serialize;
pub use serde_json;

/// The reason recorded when an audited fn panics.
pub const PANICKED: &str = "panicked";
/// The reason recorded when the future of an audited async fn is dropped before completion.
pub const CANCELLED: &str = "cancelled: the future was dropped before it completed";

/// One call of an audited fn, recorded exactly once: by [`Call::success`] /
/// [`Call::failure`], or on drop as a panic or a cancellation.
///
/// The event is built when the call ends (one clock read, like a hand-written
/// `AuditEvent::new(..).emit()` after the work), from `parts`: a closure holding the values
/// the attribute named, captured before the body ran. The body runs in a scope that collects
/// the change an audited operation inside it makes (audit-diesel's), which the event carries.
/// The outermost audited call of an HTTP request whose fn returns a response is held for the
/// HTTP layer, which settles its outcome with the response's status.
pub struct Call<P: FnOnce(AuditEvent) -> AuditEvent> {
    action: &'static str,
    category: Category,
    mode: Option<FailureMode>,
    parts: Option<P>,
    /// The scope current when the call started (async calls: to record a cancellation).
    scope: Option<AuditScope>,
    changes: ChangeSlot,
    outermost: bool,
    failure_status: fn(u16) -> bool,
}

impl<P: FnOnce(AuditEvent) -> AuditEvent> std::fmt::Debug for Call<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("action", &self.action)
            .field("done", &self.parts.is_none())
            .finish()
    }
}

/// The statuses that make an audited handler's call a failure unless its attribute says
/// otherwise: 4xx and 5xx.
pub fn default_failure_status(status: u16) -> bool {
    status >= 400
}

impl<P: FnOnce(AuditEvent) -> AuditEvent> Call<P> {
    /// Starts the record of a synchronous call.
    #[inline]
    pub fn new(
        action: &'static str,
        category: Category,
        mode: Option<FailureMode>,
        resource_kind: Option<&'static str>,
        failure_status: fn(u16) -> bool,
        parts: P,
    ) -> Self {
        Self::start(action, category, mode, resource_kind, failure_status, parts, None)
    }

    /// Starts the record of an async call; the ambient scope is kept so that a cancellation
    /// (the future dropped outside any scope) is still recorded with the right actor and tenant.
    #[inline]
    pub fn new_async(
        action: &'static str,
        category: Category,
        mode: Option<FailureMode>,
        resource_kind: Option<&'static str>,
        failure_status: fn(u16) -> bool,
        parts: P,
    ) -> Self {
        let scope = AuditScope::current();
        Self::start(action, category, mode, resource_kind, failure_status, parts, scope)
    }

    #[inline]
    fn start(
        action: &'static str,
        category: Category,
        mode: Option<FailureMode>,
        resource_kind: Option<&'static str>,
        failure_status: fn(u16) -> bool,
        parts: P,
        scope: Option<AuditScope>,
    ) -> Self {
        let outermost = match &scope {
            Some(s) => !s.is_collecting(),
            None => !AuditScope::current_is_collecting(),
        };
        Call {
            action,
            category,
            mode,
            parts: Some(parts),
            scope,
            changes: ChangeSlot::new(resource_kind.map(std::borrow::Cow::Borrowed)),
            outermost,
            failure_status,
        }
    }

    /// Runs the body of a synchronous call in the current scope, collecting the change an
    /// audited operation makes.
    #[inline(always)]
    pub fn run<R>(&self, body: impl FnOnce() -> R) -> R {
        let _collect = self.changes.enter();
        body()
    }

    /// Records a success; `late` adds the values taken from the returned value; `http` is
    /// what the returned value says of an HTTP response (see [`Probe`]).
    #[inline(always)]
    pub fn success(mut self, late: impl FnOnce(AuditEvent) -> AuditEvent, http: HttpShape) {
        self.record(late, None, http);
    }

    /// Records a failure with `reason`.
    #[inline]
    pub fn failure(mut self, reason: String, http: HttpShape) {
        self.record(|event| event, Some(reason), http);
    }

    #[inline(always)]
    fn record(&mut self, late: impl FnOnce(AuditEvent) -> AuditEvent, failure: Option<String>, http: HttpShape) {
        let Some(parts) = self.parts.take() else { return };
        let action = audit_runtime::Action::__checked(self.action, self.category);
        let mut event = late(parts(AuditEvent::of(action)));
        if let Some((resource, changes)) = self.changes.take() {
            if event.resource_of().is_none() {
                event = event.with_resource(resource);
            }
            event = event.with_changes(changes);
        }
        if let Some(reason) = failure {
            event = event.failure(reason);
        }
        // The request's HTTP layer knows the status the client gets: it settles the event.
        if self.outermost
            && http != HttpShape::NotHttp
            && let Some(shared) = SharedScope::current().filter(SharedScope::is_holding)
        {
            let held = HeldEvent {
                event,
                failure_status: self.failure_status,
                mode: self.mode,
            };
            match shared.hold(held) {
                Ok(()) => return,
                Err(held) => event = held.event,
            }
        }
        if let HttpShape::Status(code, text) = http
            && (self.failure_status)(code)
            && event.outcome_of().is_success()
        {
            event = event.failure(format!("HTTP {code} {text}").trim_end().to_owned());
        }
        // An undelivered event has already been reported loudly by the runtime (stderr, the
        // `audit::undelivered` target, the counter); the action itself has happened, so its
        // result is returned unchanged.
        match self.scope.take() {
            Some(scope) if AuditScope::current().is_none() => scope.in_scope(|| emit(event, self.mode)),
            _ => emit(event, self.mode),
        }
    }
}

#[inline]
fn emit(event: AuditEvent, mode: Option<FailureMode>) {
    let _ = event.emit_with(mode.unwrap_or_else(audit_runtime::failure_mode));
}

impl<P: FnOnce(AuditEvent) -> AuditEvent> Drop for Call<P> {
    fn drop(&mut self) {
        if self.parts.is_some() {
            let reason = if std::thread::panicking() { PANICKED } else { CANCELLED };
            self.record(|event| event, Some(reason.to_owned()), HttpShape::NotHttp);
        }
    }
}

pin_project_lite::pin_project! {
    /// The body of an audited async fn, polled with its [`Call`]: a panic while polling is
    /// recorded as a failure before it unwinds further; dropping it before completion drops the
    /// call, which records a cancellation.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Audited<P: FnOnce(AuditEvent) -> AuditEvent, F> {
        call: Option<Call<P>>,
        #[pin]
        body: F,
    }
}

/// Wraps the body future of an audited async fn; its output is the body's with the call back.
#[inline]
pub fn audited<P: FnOnce(AuditEvent) -> AuditEvent, F: Future>(call: Call<P>, body: F) -> Audited<P, F> {
    Audited { call: Some(call), body }
}

struct PollGuard<'a, P: FnOnce(AuditEvent) -> AuditEvent> {
    call: &'a mut Option<Call<P>>,
    armed: bool,
}

impl<P: FnOnce(AuditEvent) -> AuditEvent> Drop for PollGuard<'_, P> {
    fn drop(&mut self) {
        if self.armed
            && let Some(mut call) = self.call.take()
        {
            // Only reached while unwinding out of the body's `poll`.
            call.record(|event| event, Some(PANICKED.to_owned()), HttpShape::NotHttp);
        }
    }
}

impl<P: FnOnce(AuditEvent) -> AuditEvent, F: Future> Future for Audited<P, F> {
    type Output = (F::Output, Call<P>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut guard = PollGuard {
            call: this.call,
            armed: true,
        };
        let polled = {
            // The current scope as it stands (a request's authentication may refine it between
            // polls), collecting the change an audited operation makes.
            let _collect = guard.call.as_ref().map(|call| call.changes.enter());
            this.body.poll(cx)
        };
        guard.armed = false;
        match polled {
            Poll::Ready(output) => match guard.call.take() {
                Some(call) => Poll::Ready((output, call)),
                None => panic!("`Audited` polled after completion"),
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The refusal of an audited fn returning `Result<_, E>` when no healthy sink is installed and
/// the failure mode is Refuse: becomes `E::from(AuditError)` where that exists, else a panic.
pub struct Refusal<E> {
    action: &'static str,
    error: std::cell::Cell<Option<AuditError>>,
    _error_type: PhantomData<fn() -> E>,
}

impl<E> Refusal<E> {
    /// A refusal of `action`, recording the refused attempt (it reaches no sink, so the runtime
    /// reports it loudly and counts it).
    #[cold]
    pub fn new(action: &'static str, category: Category, error: AuditError) -> Self {
        refused_attempt(action, category);
        Refusal {
            action,
            error: std::cell::Cell::new(Some(error)),
            _error_type: PhantomData,
        }
    }

    /// Never called: names `E` for type inference.
    pub fn error_type(&self) -> E {
        unreachable!("type inference only")
    }

    fn take(&self) -> AuditError {
        self.error.take().unwrap_or(AuditError::NoSink)
    }
}

/// Refusal as an error value, for error types that can hold an [`AuditError`].
pub trait RefuseWithError<E> {
    /// `E::from(AuditError::NoSink)`.
    fn audit_refusal(&self) -> E;
}

impl<E: From<AuditError>> RefuseWithError<E> for &&Refusal<E> {
    #[inline]
    fn audit_refusal(&self) -> E {
        E::from(self.take())
    }
}

/// Refusal as a response, for error types that are one (the 503 of the `axum` feature).
pub trait RefuseWithResponse<E> {
    /// The 503 response as `E`.
    fn audit_refusal(&self) -> E;
}

impl<E: FromAuditRefusal> RefuseWithResponse<E> for &Refusal<E> {
    #[inline]
    fn audit_refusal(&self) -> E {
        E::from_audit_refusal(self.take())
    }
}

/// Refusal as a panic, for error types that cannot hold an [`AuditError`].
pub trait RefuseWithPanic<E> {
    /// Panics: the body must not run and no error value can be made.
    fn audit_refusal(&self) -> E;
}

impl<E> RefuseWithPanic<E> for Refusal<E> {
    fn audit_refusal(&self) -> E {
        refusal_panic(self.action, self.take())
    }
}

/// Records the refused attempt of `action`: no healthy sink takes it, so the runtime reports
/// it loudly and counts it, whatever the failure mode.
#[cold]
pub fn refused_attempt(action: &'static str, category: Category) {
    let _ = AuditEvent::new(action, category)
        .failure("refused: no healthy audit sink")
        .emit_with(FailureMode::Warn);
}

/// Refuses an audited fn that cannot return an error: records the attempt and panics, so the
/// body does not run.
#[cold]
#[track_caller]
pub fn refuse_by_panic(action: &'static str, category: Category, error: AuditError) -> ! {
    refused_attempt(action, category);
    refusal_panic(action, error)
}

#[cold]
#[track_caller]
fn refusal_panic(action: &str, error: AuditError) -> ! {
    panic!("audited action `{action}` {error}")
}

/// The failure reason of an `Err`: its `Display`.
#[inline]
pub fn reason<E: Display + ?Sized>(error: &E) -> String {
    error.to_string()
}

/// The failure reason of an `Err`, from the fn given in `reason = ...`.
#[inline]
pub fn reason_with<E: ?Sized, R: Display, F: FnOnce(&E) -> R>(error: &E, f: F) -> String {
    f(error).to_string()
}

/// The resource named in the attribute, built before the body runs.
#[inline]
pub fn resource<T: Display + ?Sized>(kind: &'static str, id: &T) -> Resource {
    Resource::new(kind, id)
}

/// A value named in the attribute, as text.
#[inline]
pub fn display<T: Display + ?Sized>(value: &T) -> String {
    value.to_string()
}

/// A model field as JSON, for snapshots; a value that cannot be represented in JSON is
/// described instead of failing the audited operation.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|e| serde_json::Value::String(format!("[unserializable: {e}]")))
}
