//! Caller-side cost of recording one audit event with the file store installed, against one
//! `tracing::info!` with the same eight fields through `fmt().json()` into `io::sink()`.

use std::time::{Duration, Instant};

use audit_runtime::{Actor, AuditEvent, AuditLayer, AuditScope, AuthMethod, Category, FailureMode, FileStore};
use criterion::{Criterion, criterion_group};
use tracing_subscriber::prelude::*;

fn caller(c: &mut Criterion) {
    let mut group = c.benchmark_group("caller");
    group.measurement_time(Duration::from_secs(4));

    let json = tracing_subscriber::fmt().json().with_writer(std::io::sink).finish();
    tracing::subscriber::with_default(json, || {
        group.bench_function("fmt_json_info", |b| {
            b.iter(|| {
                tracing::info!(
                    action = "billing.update",
                    category = "mutation",
                    outcome = "success",
                    actor_type = "user",
                    actor_id = "usr_123",
                    tenant = "acme",
                    resource_type = "customer",
                    resource_id = "cust_abc123",
                    "audit event"
                )
            })
        });
    });

    let dir = tempfile::tempdir().unwrap();
    // A queue deep enough that each measured batch fits: this measures the hand-off, and
    // the flush between batches (not timed) lets the writer catch up.
    let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path()).unwrap())
        .capacity(1 << 16)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let scope = AuditScope::new()
            .actor(Actor::user("usr_123", AuthMethod::Sso))
            .tenant("acme");
        let _entered = scope.enter();
        group.bench_function("audit_emit", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(50_000);
                    let start = Instant::now();
                    for _ in 0..n {
                        AuditEvent::new("billing.update", Category::Mutation)
                            .resource("customer", "cust_abc123")
                            .emit_with(FailureMode::Refuse)
                            .unwrap();
                    }
                    total += start.elapsed();
                    guard.flush().unwrap();
                    left -= n;
                }
                total
            })
        });
    });
    group.finish();
    drop(guard);
}

criterion_group!(benches, caller);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    audit_bench_support::report("caller", "fmt_json_info", "audit_emit", Some(0.5), false);
}
