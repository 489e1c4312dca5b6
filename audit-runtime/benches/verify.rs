//! `audit verify` throughput against the pure SHA-256 loop over the same lines.

use std::time::Duration;

use audit_runtime::verify::{Location, Verifier, VerifyOptions, verify_paths};
use audit_runtime::{Actor, AuditEvent, AuditLayer, AuthMethod, Category, FailureMode, FileStore};
use criterion::{Criterion, Throughput, criterion_group};
use sha2::{Digest, Sha256};
use tracing_subscriber::prelude::*;

const EVENTS: u64 = 100_000;

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path()).unwrap())
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..EVENTS {
            AuditEvent::new("customer_record.read", Category::DataAccess)
                .actor(Actor::user("usr_123", AuthMethod::Sso))
                .tenant("acme")
                .resource("customer", i)
                .context("ip", "203.0.113.7")
                .context("user_agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0")
                .context("request_id", "req_9f2c4a1b")
                .emit_with(FailureMode::Refuse)
                .unwrap();
        }
    });
    guard.shutdown().unwrap();
    let segment = dir.path().join("chains/acme/00000000000000000001.jsonl");
    let data = std::fs::read(&segment).unwrap();
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    println!(
        "verify bench: {} lines, {:.0} bytes/line",
        lines.len(),
        data.len() as f64 / lines.len() as f64
    );

    let mut group = c.benchmark_group("verify");
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(20);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("sha256_lines", |b| {
        b.iter(|| {
            let mut last = [0u8; 32];
            for line in &lines {
                last = Sha256::digest(line).into();
            }
            last
        })
    });
    group.bench_function("verifier_lines", |b| {
        b.iter(|| {
            let mut verifier = Verifier::new();
            for (i, line) in lines.iter().enumerate() {
                verifier.push(
                    line,
                    || Location {
                        path: segment.clone(),
                        line: i as u64 + 1,
                    },
                    true,
                );
            }
            let report = verifier.finish();
            assert!(report.is_ok());
            report.lines
        })
    });
    group.bench_function("verify_store_dir", |b| {
        b.iter(|| {
            let report = verify_paths(&[dir.path()], &VerifyOptions::default()).unwrap();
            assert!(report.is_ok());
            report.lines
        })
    });
    group.finish();
}

criterion_group!(benches, verify);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    audit_bench_support::report("verify", "sha256_lines", "verifier_lines", Some(0.6), true);
    audit_bench_support::report("verify", "sha256_lines", "verify_store_dir", Some(0.6), true);
}
