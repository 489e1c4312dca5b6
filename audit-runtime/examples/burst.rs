//! Memory under a burst: four threads record 1M events as fast as they can into a file store,
//! then the peak resident memory is reported. The bounded queue (capacity, plus at most four
//! batches between the writer's threads) is what keeps it flat; compare capacities to see it.
//!
//! ```text
//! cargo run --release -p audit-runtime --example burst [-- EVENTS [CAPACITY]]
//! ```

use std::time::Instant;

use audit_runtime::{Actor, AuditEvent, AuditLayer, AuditScope, AuthMethod, Category, FailureMode, FileStore};
use tracing_subscriber::prelude::*;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: u64 = std::env::args().nth(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let capacity: usize = std::env::args().nth(2).map_or(Ok(16 * 1024), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let before = peak_rss_kib();
    let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path())?)
        .capacity(capacity)
        .build()?;
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let scope = AuditScope::new()
                        .actor(Actor::user(format!("usr_{t}"), AuthMethod::Sso))
                        .tenant("acme");
                    let _entered = scope.enter();
                    for i in 0..events / 4 {
                        AuditEvent::new("customer_record.read", Category::DataAccess)
                            .resource("customer", i)
                            .context("request_id", "req_9f2c4a1b")
                            .emit_with(FailureMode::Refuse)
                            .expect("delivered");
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().expect("producer");
    }
    guard.flush()?;
    let elapsed = start.elapsed();
    drop(guard);
    let bytes: u64 = std::fs::read_dir(dir.path().join("chains/acme"))?
        .map(|e| e.map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)).unwrap_or(0))
        .sum();
    println!(
        "burst: {events} events from 4 threads in {:.2} s ({:.0} events/s), {} MiB written, queue capacity {capacity}",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        bytes >> 20
    );
    println!(
        "peak RSS: {} MiB (before the writer started: {} MiB)",
        peak_rss_kib() / 1024,
        before / 1024
    );
    Ok(())
}
