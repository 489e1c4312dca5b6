//! Recording an event: the hand-off from the calling thread to the installed audit layer,
//! and what happens when no healthy audit sink takes it (the failure mode).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::layer::{AuditLayer, SpanCapture};
use crate::scope::AuditScope;
use crate::writer::Shared;

/// What happens when an audit event cannot be handed to a healthy audit sink, like auditd's
/// failure flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Report the lost event loudly (stderr, a `tracing` error on target `audit::undelivered`,
    /// and [`undelivered_count`]) and let the application go on.
    #[default]
    Warn,
    /// Refuse: [`AuditEvent::emit`] returns [`AuditError::Undelivered`], and audited functions
    /// that check [`ensure_sink`] first do not run at all.
    Refuse,
}

static MODE: AtomicU8 = AtomicU8::new(0);
static UNDELIVERED: AtomicU64 = AtomicU64::new(0);

/// Sets the process-wide failure mode (default [`FailureMode::Warn`]).
pub fn set_failure_mode(mode: FailureMode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

/// The process-wide failure mode.
pub fn failure_mode() -> FailureMode {
    match MODE.load(Ordering::Relaxed) {
        0 => FailureMode::Warn,
        _ => FailureMode::Refuse,
    }
}

/// How many events could not be handed to a healthy sink since the process started.
pub fn undelivered_count() -> u64 {
    UNDELIVERED.load(Ordering::Relaxed)
}

/// Whether the current `tracing` dispatcher has an [`AuditLayer`] whose writer takes events
/// now (running, and its store not failing under
/// [`StoreFailure::Reject`](crate::StoreFailure::Reject)).
pub fn sink_is_healthy() -> bool {
    tracing::dispatcher::get_default(|d| d.downcast_ref::<AuditLayer>().is_some_and(AuditLayer::is_accepting))
}

/// For fail-closed code paths: `Ok` when an event recorded now would reach a healthy sink, or
/// when the effective failure mode is [`FailureMode::Warn`]; otherwise the error to return
/// instead of performing the audited action.
pub fn ensure_sink(mode: Option<FailureMode>) -> Result<(), AuditError> {
    if mode.unwrap_or_else(failure_mode) == FailureMode::Refuse && !sink_is_healthy() {
        return Err(AuditError::NoSink);
    }
    Ok(())
}

/// A layer's claim on the event being emitted on this thread.
pub(crate) struct Claim {
    pub shared: Arc<Shared>,
    pub span: Option<SpanCapture>,
}

thread_local! {
    // Set while `emit` dispatches its `tracing` event; the audit layer claims it. If it is
    // still unclaimed after dispatch, no audit layer saw the event: the delivery signal.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static CLAIM: RefCell<Option<Claim>> = const { RefCell::new(None) };
}

/// Called by the layer on the emitting thread: true if an `emit` is waiting for a claim.
pub(crate) fn claim(make: impl FnOnce() -> Option<Claim>) {
    if ARMED.with(|a| a.replace(false)) {
        match make() {
            Some(claim) => CLAIM.with(|c| *c.borrow_mut() = Some(claim)),
            None => ARMED.with(|a| a.set(true)),
        }
    }
}

impl AuditEvent {
    /// Records this event with the process-wide [`FailureMode`].
    ///
    /// The calling thread only captures the ambient [`AuditScope`] and hands the event to the
    /// installed [`AuditLayer`]; serialization, chaining and I/O happen on the writer's threads.
    /// `Ok` means the writer has the event (call [`WriterGuard::flush`](crate::WriterGuard::flush)
    /// to wait until it is durable); an `Err` is only returned in [`FailureMode::Refuse`].
    pub fn emit(self) -> Result<(), AuditError> {
        self.emit_with(failure_mode())
    }

    /// Records this event with an explicit failure mode for this one call.
    pub fn emit_with(mut self, mode: FailureMode) -> Result<(), AuditError> {
        if !self.checked {
            crate::action::check(&mut self, mode)?;
        }
        if let Some(shared) = crate::SharedScope::current() {
            shared.note_recorded();
        }
        let claim = dispatch(&self);
        let (undelivered, reason) = match claim {
            Some(claim) => match claim.shared.send(self, AuditScope::current(), claim.span) {
                Ok(()) => return Ok(()),
                Err(back) => back.into_parts(),
            },
            None => (self, no_layer_reason()),
        };
        report_undelivered(&undelivered, &reason, mode)
    }
}

fn dispatch(event: &AuditEvent) -> Option<Claim> {
    let outer_armed = ARMED.with(|a| a.replace(true));
    let outer_claim = CLAIM.with(|c| c.borrow_mut().take());
    let status = if event.outcome.is_success() {
        "success"
    } else {
        "failure"
    };
    tracing::event!(
        target: "audit",
        tracing::Level::INFO,
        audit.action = &*event.action,
        audit.category = event.category.as_str(),
        audit.outcome = status,
        "audit event"
    );
    ARMED.with(|a| a.set(outer_armed));
    CLAIM.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer_claim))
}

/// Why no audit layer took an event on this thread. When the process does run an audit
/// writer, the usual cause is a subscriber installed for one thread only (`set_default`)
/// while the event came from another (a tokio worker, say): say exactly that.
fn no_layer_reason() -> String {
    match crate::writer::running_writers() {
        0 => "no audit layer is installed (no AuditLayer in this thread's tracing subscriber, and no \
              audit writer runs in this process)"
            .to_owned(),
        _ => "this thread's tracing subscriber has no audit layer, although this process runs an audit \
              writer: install the subscriber as the global default (`.init()` or \
              `tracing::subscriber::set_global_default`), not with `set_default()`, which covers only the \
              thread that called it; or a filter on the whole subscriber drops target `audit` (filter \
              each application layer instead)"
            .to_owned(),
    }
}

fn report_undelivered(event: &AuditEvent, reason: &str, mode: FailureMode) -> Result<(), AuditError> {
    let total = UNDELIVERED.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::error!(
        target: "audit::undelivered",
        action = &*event.action,
        total,
        reason,
        "audit event not delivered"
    );
    if should_print() {
        eprintln!("AUDIT EVENT NOT DELIVERED ({total} so far): {reason}. Event: {event:?}");
    }
    match mode {
        FailureMode::Warn => Ok(()),
        FailureMode::Refuse => Err(AuditError::Undelivered {
            action: event.action.to_string(),
            reason: reason.to_owned(),
        }),
    }
}

/// At most one stderr report per second, so a broken sink cannot flood the terminal; the
/// counter and the `tracing` error still see every event.
fn should_print() -> bool {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
    if due {
        *last = Some(Instant::now());
    }
    due
}
