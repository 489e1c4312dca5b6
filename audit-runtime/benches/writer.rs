//! Writer throughput (serialize + chain + write with group commit, off the emitting thread)
//! against the pure build + serialize + SHA-256 loop over the same events on one core.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use audit_runtime::StoreError;
use audit_runtime::store::{ChainBatch, ChainHead, Seal, Store, SyncJob};
use audit_runtime::{
    Actor, AuditEvent, AuditLayer, AuditScope, AuthMethod, Category, ChainHash, Context, FailureMode, FileStore,
    Outcome, Record, Resource, Timestamp,
};
use criterion::{Criterion, Throughput, criterion_group};
use sha2::{Digest, Sha256};
use tracing_subscriber::prelude::*;

const BATCH: u64 = 20_000;

fn context() -> Context {
    let mut c = Context::default();
    c.set("ip", "203.0.113.7");
    c.set("user_agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0");
    c.set("request_id", "req_9f2c4a1b");
    c
}

fn writer(c: &mut Criterion) {
    let mut group = c.benchmark_group("writer");
    group.measurement_time(Duration::from_secs(6));
    group.sample_size(20);
    group.throughput(Throughput::Elements(BATCH));

    group.bench_function("build_serialize_sha256", |b| {
        let actor = Actor::user("usr_123", AuthMethod::Sso);
        let mut prev = ChainHash::GENESIS;
        let mut buf = Vec::with_capacity(1024);
        b.iter(|| {
            for seq in 1..=BATCH {
                let record = Record {
                    v: 1,
                    id: uuid::Uuid::now_v7(),
                    chain: "acme".into(),
                    seq,
                    timestamp: Timestamp::now(),
                    actor: actor.clone(),
                    action: "billing.update".into(),
                    category: Category::Mutation,
                    resource: Some(Resource::new("customer", "cust_abc123")),
                    outcome: Outcome::Success,
                    context: Some(context()),
                    tenant: Some("acme".into()),
                    changes: None,
                    prev_hash: prev,
                    hash: ChainHash::GENESIS,
                };
                buf.clear();
                serde_json::to_writer(&mut buf, &record).unwrap();
                prev = ChainHash(Sha256::digest(&buf).into());
            }
            prev
        })
    });

    // The writer alone: events are queued while its store is held shut, then the clock runs
    // from opening the gate until a flush returns (serialize + chain + write + fdatasync).
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new((Mutex::new(true), Condvar::new()));
    let store = GatedStore {
        inner: FileStore::open(dir.path()).unwrap(),
        gate: Arc::clone(&gate),
    };
    let (layer, guard) = AuditLayer::builder(store)
        .capacity(BATCH as usize + 1)
        .commit_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let scope = AuditScope::new()
        .actor(Actor::user("usr_123", AuthMethod::Sso))
        .tenant("acme");
    let emit = || {
        tracing::dispatcher::with_default(&dispatch, || {
            let _entered = scope.enter();
            for _ in 0..BATCH {
                event().emit_with(FailureMode::Refuse).unwrap();
            }
        })
    };
    group.bench_function("audit_writer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                set_gate(&gate, false);
                emit();
                let start = Instant::now();
                set_gate(&gate, true);
                guard.flush().unwrap();
                total += start.elapsed();
            }
            total
        })
    });

    // End to end, for reference: one emitting thread and the writer running together.
    group.bench_function("emit_to_disk", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                emit();
            }
            guard.flush().unwrap();
            start.elapsed()
        })
    });
    group.finish();
    drop(guard);
}

fn event() -> AuditEvent {
    AuditEvent::new("billing.update", Category::Mutation)
        .resource("customer", "cust_abc123")
        .context("ip", "203.0.113.7")
        .context("user_agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0")
        .context("request_id", "req_9f2c4a1b")
}

/// A real file store whose appends wait while the gate is shut.
struct GatedStore {
    inner: FileStore,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

fn set_gate(gate: &(Mutex<bool>, Condvar), open: bool) {
    *gate.0.lock().unwrap() = open;
    gate.1.notify_all();
}

impl Store for GatedStore {
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        self.inner.heads()
    }
    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
        let (open, cvar) = &*self.gate;
        drop(cvar.wait_while(open.lock().unwrap(), |open| !*open).unwrap());
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

criterion_group!(benches, writer);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    audit_bench_support::report("writer", "build_serialize_sha256", "audit_writer", Some(0.7), true);
    audit_bench_support::report("writer", "build_serialize_sha256", "emit_to_disk", None, true);
}
