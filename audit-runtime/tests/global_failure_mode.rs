//! The process-wide failure mode (its own test binary: it changes global state).

use audit_runtime::{AuditError, AuditEvent, Category, FailureMode};

#[test]
fn the_process_wide_mode_applies_to_emit_and_ensure_sink() {
    assert_eq!(audit_runtime::failure_mode(), FailureMode::Warn);
    assert!(AuditEvent::new("user.login", Category::Authentication).emit().is_ok());
    assert!(audit_runtime::ensure_sink(None).is_ok());

    audit_runtime::set_failure_mode(FailureMode::Refuse);
    assert!(matches!(
        AuditEvent::new("user.login", Category::Authentication).emit(),
        Err(AuditError::Undelivered { .. })
    ));
    assert!(matches!(audit_runtime::ensure_sink(None), Err(AuditError::NoSink)));
    // A per-call mode still wins.
    assert!(
        AuditEvent::new("user.login", Category::Authentication)
            .emit_with(FailureMode::Warn)
            .is_ok()
    );
    audit_runtime::set_failure_mode(FailureMode::Warn);
}
