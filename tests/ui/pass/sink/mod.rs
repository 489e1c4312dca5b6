//! Runs code with a real audit sink, so that pass cases record their events quietly.

use tracing_subscriber::prelude::*;

/// Runs `f` with an audit layer writing to a temporary directory; returns its result and the
/// number of events recorded.
pub fn with_sink<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = audit::AuditLayer::builder(audit::FileStore::open(dir.path()).unwrap())
        .build()
        .unwrap();
    let result = tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    guard.flush().unwrap();
    drop(guard);
    let report = audit::verify::verify_paths(&[dir.path()], &Default::default()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let count = report.chains.iter().map(|c| c.count as usize).sum();
    (result, count)
}

/// Runs a future to completion on the current thread, with a sink.
#[allow(dead_code)]
pub fn block_on<F: std::future::Future>(f: F) -> (F::Output, usize) {
    with_sink(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
}
