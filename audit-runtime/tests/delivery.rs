//! Delivery guarantees: failure modes, backpressure, flush and shutdown.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use audit_runtime::store::{ChainBatch, ChainHead, Seal, Store, SyncJob};
use audit_runtime::{
    AuditError, AuditEvent, AuditLayer, Category, FailureMode, FileStore, OnFull, StoreError, StoreFailure,
};
use tracing_subscriber::prelude::*;

fn login() -> AuditEvent {
    AuditEvent::new("user.login", Category::Authentication)
}

#[test]
fn without_a_sink_warn_mode_counts_and_refuse_mode_errors() {
    // No subscriber at all on this thread.
    let before = audit_runtime::undelivered_count();
    assert!(login().emit_with(FailureMode::Warn).is_ok());
    assert_eq!(audit_runtime::undelivered_count(), before + 1);
    assert!(matches!(
        login().emit_with(FailureMode::Refuse),
        Err(AuditError::Undelivered { .. })
    ));
    assert!(!audit_runtime::sink_is_healthy());
    assert!(matches!(
        audit_runtime::ensure_sink(Some(FailureMode::Refuse)),
        Err(AuditError::NoSink)
    ));
    assert!(audit_runtime::ensure_sink(Some(FailureMode::Warn)).is_ok());

    // A subscriber without the audit layer is no sink either.
    let subscriber = tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
    tracing::subscriber::with_default(subscriber, || {
        assert!(matches!(
            audit_runtime::ensure_sink(Some(FailureMode::Refuse)),
            Err(AuditError::NoSink)
        ));
        assert!(login().emit_with(FailureMode::Refuse).is_err());
    });
}

#[test]
fn a_stopped_writer_is_not_a_healthy_sink() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        assert!(audit_runtime::sink_is_healthy());
        audit_runtime::ensure_sink(Some(FailureMode::Refuse)).unwrap();
        login().emit_with(FailureMode::Refuse).unwrap();
        guard.shutdown().unwrap();
        assert!(!audit_runtime::sink_is_healthy());
        assert!(matches!(
            audit_runtime::ensure_sink(Some(FailureMode::Refuse)),
            Err(AuditError::NoSink)
        ));
        assert!(matches!(
            login().emit_with(FailureMode::Refuse),
            Err(AuditError::Undelivered { .. })
        ));
    });
    assert_eq!(
        common::records(dir.path(), "default").len(),
        1,
        "shutdown drained and synced"
    );
}

/// A real file store that runs `before_append` before each append: it can hold the writer
/// (a slow disk) or fail the append (a full one).
struct HookedStore<F> {
    inner: FileStore,
    before_append: F,
}

impl<F: FnMut() -> Result<(), StoreError> + Send + 'static> Store for HookedStore<F> {
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        self.inner.heads()
    }
    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
        (self.before_append)()?;
        self.inner.append(batch, head)
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        self.inner.sync()
    }
    fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        self.inner.sync_job()
    }
    fn seal(&mut self, seals: &[Seal]) -> Result<(), StoreError> {
        self.inner.seal(seals)
    }
}

fn gated(
    dir: &std::path::Path,
    capacity: usize,
    on_full: OnFull,
) -> (AuditLayer, audit_runtime::WriterGuard, Arc<(Mutex<bool>, Condvar)>) {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let shut = Arc::clone(&gate);
    // Appends wait until the test opens the gate.
    let store = HookedStore {
        inner: FileStore::open(dir).unwrap(),
        before_append: move || {
            let (open, cvar) = &*shut;
            drop(cvar.wait_while(open.lock().unwrap(), |open| !*open).unwrap());
            Ok(())
        },
    };
    let (layer, guard) = AuditLayer::builder(store)
        .capacity(capacity)
        .max_batch(8)
        .on_full(on_full)
        .build()
        .unwrap();
    (layer, guard, gate)
}

/// Opens the gate even when an assertion fails, so a failing test cannot hang the writer.
struct OpenOnDrop(Arc<(Mutex<bool>, Condvar)>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        open(&self.0);
    }
}

fn open(gate: &(Mutex<bool>, Condvar)) {
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
}

#[test]
fn a_full_queue_blocks_emitters_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard, gate) = gated(dir.path(), 4, OnFull::Block);
    let emitted = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&emitted);
    let subscriber = tracing_subscriber::registry().with(layer);
    let dispatch = tracing::Dispatch::new(subscriber);
    let producer = std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..100 {
                login().resource("user", i).emit_with(FailureMode::Refuse).unwrap();
                *counter.lock().unwrap() += 1;
            }
        })
    });
    let _opens_on_panic = OpenOnDrop(Arc::clone(&gate));
    std::thread::sleep(Duration::from_millis(300));
    let stuck_at = *emitted.lock().unwrap();
    // The writer thread holds under two batches of 8 it cannot store, one more waits for it,
    // the serializing thread holds a fourth it cannot hand over, and the queue holds 4: the
    // producer waits with at most 4 * 8 + 4 (+1 in hand) events emitted.
    assert!(
        stuck_at <= 4 * 8 + 4 + 1,
        "producer was not held back (emitted {stuck_at})"
    );
    assert!(!producer.is_finished());
    open(&gate);
    producer.join().unwrap();
    guard.flush().unwrap();
    let records = common::records(dir.path(), "default");
    assert_eq!(records.len(), 100);
    let ids: Vec<String> = records
        .iter()
        .map(|r| r.resource.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(
        ids,
        (0..100).map(|i| i.to_string()).collect::<Vec<_>>(),
        "in order, none lost"
    );
    common::assert_verifies(dir.path());
}

#[test]
fn a_full_queue_with_a_timeout_reports_undelivered_events() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard, gate) = gated(dir.path(), 2, OnFull::Timeout(Duration::from_millis(20)));
    let subscriber = tracing_subscriber::registry().with(layer);
    let _opens_on_panic = OpenOnDrop(Arc::clone(&gate));
    let outcomes: Vec<bool> = tracing::subscriber::with_default(subscriber, || {
        (0..60)
            .map(|_| login().emit_with(FailureMode::Refuse).is_ok())
            .collect()
    });
    // The stuck writer's threads hold at most four batches of 8 (under two being stored, one
    // waiting, one being handed over) and the queue 2: the rest must time out.
    let delivered = outcomes.iter().filter(|ok| **ok).count();
    assert!(
        delivered <= 4 * 8 + 2 + 1,
        "at most four batches and a full queue are accepted: {outcomes:?}"
    );
    assert!(delivered < outcomes.len(), "some events must time out: {outcomes:?}");
    open(&gate);
    // The flush after the loss says how many were lost, once; the next one is clean.
    match guard.flush() {
        Err(AuditError::Lost { count }) => assert_eq!(count as usize, outcomes.len() - delivered),
        other => panic!("the flush must report the lost events: {other:?}"),
    }
    guard.flush().unwrap();
    assert_eq!(
        common::records(dir.path(), "default").len(),
        delivered,
        "exactly the acknowledged ones"
    );
}

#[test]
fn flush_waits_for_events_sent_before_it_from_other_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..250 {
                        login()
                            .tenant(format!("t{}", t % 2))
                            .resource("user", i)
                            .emit_with(FailureMode::Refuse)
                            .unwrap();
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    guard.flush().unwrap();
    assert_eq!(common::records(dir.path(), "t0").len(), 500);
    assert_eq!(common::records(dir.path(), "t1").len(), 500);
    let report = common::assert_verifies(dir.path());
    assert_eq!(report.chains.iter().map(|c| c.count).sum::<u64>(), 1000);
}

/// A file store whose appends fail while `failing` is set, as on a full disk.
fn failing_store(
    dir: &std::path::Path,
    failing: &Arc<AtomicBool>,
) -> HookedStore<impl FnMut() -> Result<(), StoreError> + Send + 'static> {
    let full = Arc::clone(failing);
    HookedStore {
        inner: FileStore::open(dir).unwrap(),
        before_append: move || match full.load(Ordering::SeqCst) {
            true => Err(StoreError::Config("no space left on device (simulated)".into())),
            false => Ok(()),
        },
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_failing_store_holds_events_and_writes_them_in_order_once_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let failing = Arc::new(AtomicBool::new(false));
    // Batches of two: events sent around the failure reach the writer in several batches,
    // which must queue behind the ones it holds. The default keeps taking events meanwhile.
    let (layer, guard) = AuditLayer::builder(failing_store(dir.path(), &failing))
        .max_batch(2)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..3 {
            login().resource("user", i).emit_with(FailureMode::Refuse).unwrap();
        }
        guard.flush().unwrap();

        failing.store(true, Ordering::SeqCst);
        for i in 3..12 {
            login().resource("user", i).emit_with(FailureMode::Refuse).unwrap();
        }
        wait_until("the writer finds the store failing", || guard.failure().is_some());
        let failure = guard.flush().expect_err("flush must report the failing store");
        assert!(failure.to_string().contains("no space left"), "{failure}");
        assert!(failure.to_string().contains("chain `default`"), "{failure}");
        // Still taking events: they queue behind the held ones.
        assert!(audit_runtime::sink_is_healthy());
        login().resource("user", 12).emit_with(FailureMode::Refuse).unwrap();

        failing.store(false, Ordering::SeqCst);
        wait_until("the writer recovers", || guard.failure().is_none());
        guard.flush().unwrap();
    });
    let ids: Vec<String> = common::records(dir.path(), "default")
        .iter()
        .map(|r| r.resource.as_ref().unwrap().id.clone())
        .collect();
    let expected: Vec<String> = (0..13).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected, "every event, once, in order");
    common::assert_verifies(dir.path());
}

#[test]
fn a_rejecting_writer_refuses_events_while_the_store_fails_and_flush_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let failing = Arc::new(AtomicBool::new(false));
    let (layer, guard) = AuditLayer::builder(failing_store(dir.path(), &failing))
        .on_store_failure(StoreFailure::Reject)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let accepted = tracing::subscriber::with_default(subscriber, || {
        login().resource("user", 0).emit_with(FailureMode::Refuse).unwrap();
        guard.flush().unwrap();
        failing.store(true, Ordering::SeqCst);
        login().resource("user", 1).emit_with(FailureMode::Refuse).unwrap();
        wait_until("the writer finds the store failing", || guard.failure().is_some());
        assert!(!audit_runtime::sink_is_healthy());
        assert!(matches!(
            audit_runtime::ensure_sink(Some(FailureMode::Refuse)),
            Err(AuditError::NoSink)
        ));
        let refused = login().resource("user", 2).emit_with(FailureMode::Refuse).unwrap_err();
        assert!(refused.to_string().contains("no space left"), "{refused}");
        // Warn mode: the event is lost and counted; the flush after recovery must say so.
        login().resource("user", 3).emit_with(FailureMode::Warn).unwrap();

        failing.store(false, Ordering::SeqCst);
        wait_until("the writer recovers", || guard.failure().is_none());
        match guard.flush() {
            Err(AuditError::Lost { count }) => assert_eq!(count, 2),
            other => panic!("the flush must count the events lost meanwhile: {other:?}"),
        }
        guard.flush().unwrap();
        login().resource("user", 4).emit_with(FailureMode::Refuse).unwrap();
        guard.flush().unwrap();
        ["0", "1", "4"]
    });
    let ids: Vec<String> = common::records(dir.path(), "default")
        .iter()
        .map(|r| r.resource.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids, accepted, "every accepted event, once, in order");
    common::assert_verifies(dir.path());
}
