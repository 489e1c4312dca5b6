//! Writer throughput (serialize + chain + write with group commit, off the emitting thread)
//! against the pure build + serialize + SHA-256 loop over the same events on one core.

mod support;

use std::time::{Duration, Instant};

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

    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path()).unwrap())
        .commit_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    group.bench_function("audit_writer", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let producer = {
                let dispatch = dispatch.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        let scope = AuditScope::new()
                            .actor(Actor::user("usr_123", AuthMethod::Sso))
                            .tenant("acme");
                        let _entered = scope.enter();
                        for _ in 0..iters * BATCH {
                            let mut event = AuditEvent::new("billing.update", Category::Mutation)
                                .resource("customer", "cust_abc123");
                            for (k, v) in [
                                ("ip", "203.0.113.7"),
                                ("user_agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"),
                                ("request_id", "req_9f2c4a1b"),
                            ] {
                                event = event.context(k, v);
                            }
                            event.emit_with(FailureMode::Refuse).unwrap();
                        }
                    })
                })
            };
            producer.join().unwrap();
            guard.flush().unwrap();
            start.elapsed()
        })
    });
    group.finish();
    drop(guard);
}

criterion_group!(benches, writer);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    support::report("writer", "build_serialize_sha256", "audit_writer", 0.7, true);
}
