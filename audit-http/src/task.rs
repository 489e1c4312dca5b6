//! Tokio tasks that keep the audit scope: `tokio::spawn` and `spawn_blocking` start with no
//! thread-local state, so events recorded in them would lose the request's actor, tenant and
//! context (and an audited call's change would not reach its event).

use audit_runtime::{AuditScope, WithAuditScope};

/// `tokio::spawn`, with the current audit scope carried into the task.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_audit_scope())
}

/// `tokio::task::spawn_blocking`, with the current audit scope entered in the closure: for
/// synchronous diesel inside an async handler.
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let scope = AuditScope::current();
    tokio::task::spawn_blocking(move || match scope {
        Some(scope) => scope.in_scope(f),
        None => f(),
    })
}
