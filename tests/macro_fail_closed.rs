//! Fail-closed `#[audited]` fns: with no healthy audit sink and a failure mode of Refuse
//! (for one fn with `fail_closed`, or globally), the body does not run. The failure mode is
//! process-wide, so these tests take turns.

mod macro_support;

use std::panic::catch_unwind;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use audit::{AuditError, FailureMode, audited, set_failure_mode, undelivered_count};
use macro_support::record;

static SERIAL: Mutex<()> = Mutex::new(());
static RUNS: AtomicUsize = AtomicUsize::new(0);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn runs() -> usize {
    RUNS.load(Ordering::SeqCst)
}

#[derive(Debug)]
enum AppError {
    Audit(AuditError),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Audit(e) => write!(f, "audit: {e}"),
        }
    }
}

impl From<AuditError> for AppError {
    fn from(e: AuditError) -> Self {
        AppError::Audit(e)
    }
}

#[derive(Debug)]
struct PlainError;

impl std::fmt::Display for PlainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("plain")
    }
}

#[audited(action = "account.delete", resource = "account", id = id, fail_closed)]
fn delete_account(id: u64) -> Result<u64, AppError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(id)
}

#[audited(action = "account.delete", fail_closed)]
async fn delete_account_async(id: u64) -> Result<u64, AppError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(id)
}

#[audited(action = "data.export", fail_closed)]
fn export_all() -> usize {
    RUNS.fetch_add(1, Ordering::SeqCst);
    10
}

#[audited(action = "invoice.delete")]
fn delete_invoice_app() -> Result<(), AppError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[audited(action = "invoice.delete")]
fn delete_invoice_plain() -> Result<(), PlainError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[audited(action = "invoice.send")]
fn send_invoice() -> bool {
    RUNS.fetch_add(1, Ordering::SeqCst);
    true
}

#[audited(action = "invoice.send", fail_open)]
fn send_invoice_anyway() -> bool {
    RUNS.fetch_add(1, Ordering::SeqCst);
    true
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn fail_closed_fns_refuse_without_a_sink_whatever_the_global_mode() {
    let _serial = serial();
    set_failure_mode(FailureMode::Warn);
    let before = runs();
    let lost = undelivered_count();

    // No subscriber on this thread: no healthy sink.
    match delete_account(7) {
        Err(AppError::Audit(AuditError::NoSink)) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    let refused_async = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(delete_account_async(7));
    assert!(matches!(refused_async, Err(AppError::Audit(AuditError::NoSink))));
    let panicked = catch_unwind(export_all).expect_err("a fn that cannot return an error refuses by panicking");
    assert_eq!(
        panic_message(panicked),
        "audited action `data.export` refused: no healthy audit sink is installed, so this audited action may not run"
    );
    assert_eq!(runs(), before, "no body ran");
    assert!(
        undelivered_count() >= lost + 3,
        "each refused attempt is reported loudly"
    );

    // With a sink they run and are recorded.
    let (results, recorded) = record(|| (delete_account(7).unwrap(), export_all()));
    assert_eq!(results, (7, 10));
    assert_eq!(runs(), before + 2);
    assert_eq!(recorded.one("account.delete")["outcome"]["status"], "success");
    assert_eq!(recorded.one("data.export")["category"], "admin");
}

#[test]
fn the_global_refuse_mode_refuses_every_audited_fn_without_a_sink() {
    let _serial = serial();
    set_failure_mode(FailureMode::Refuse);
    let before = runs();

    // An error type that can hold an AuditError gets it, without asking in the signature.
    assert!(matches!(delete_invoice_app(), Err(AppError::Audit(AuditError::NoSink))));
    // Others cannot return an error: they panic rather than run unaudited.
    let plain = catch_unwind(delete_invoice_plain).expect_err("refused by panic");
    assert!(panic_message(plain).starts_with("audited action `invoice.delete` refused"));
    let unit = catch_unwind(send_invoice).expect_err("refused by panic");
    assert!(panic_message(unit).starts_with("audited action `invoice.send` refused"));
    assert_eq!(runs(), before, "no body ran");

    // `fail_open` runs whatever the global mode.
    assert!(send_invoice_anyway());
    assert_eq!(runs(), before + 1);

    // With a sink, everything runs.
    let (ok, recorded) = record(|| {
        delete_invoice_app().unwrap();
        delete_invoice_plain().unwrap();
        send_invoice() && send_invoice_anyway()
    });
    set_failure_mode(FailureMode::Warn);
    assert!(ok);
    assert_eq!(runs(), before + 5);
    assert_eq!(recorded.records.len(), 4);
}

#[test]
fn the_warn_mode_runs_the_body_and_reports_the_lost_event() {
    let _serial = serial();
    set_failure_mode(FailureMode::Warn);
    let (before, lost) = (runs(), undelivered_count());
    assert!(send_invoice());
    delete_invoice_plain().unwrap();
    assert_eq!(runs(), before + 2);
    assert!(undelivered_count() >= lost + 2);
}
