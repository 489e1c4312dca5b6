//! Crash safety with a real process killed by SIGKILL: every event covered by a returned
//! `flush()` survives, and the chain continues after restart.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use audit_runtime::{AuditEvent, Category, FailureMode, Store};
use tracing_subscriber::prelude::*;

const CHILD_ENV: &str = "AUDIT_CRASH_CHILD_DIR";

/// Runs inside the child process only: writes events forever, printing how many a returned
/// `flush()` covers.
#[test]
#[ignore = "child process of `flushed_events_survive_sigkill`"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let (layer, guard) = common::file_layer(dir.as_ref());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let payload = "p".repeat(2000);
        for batch in 0u64.. {
            for i in 0..50 {
                AuditEvent::new("invoice.update", Category::Mutation)
                    .tenant(if i % 3 == 0 { "globex" } else { "acme" })
                    .resource("invoice", batch * 50 + i)
                    .changes(None, Some(serde_json::json!({ "note": payload })))
                    .emit_with(FailureMode::Refuse)
                    .unwrap();
            }
            guard.flush().unwrap();
            println!("flushed {}", (batch + 1) * 50);
        }
    });
}

fn stored_count(dir: &std::path::Path) -> u64 {
    let mut store = audit_runtime::FileStore::open(dir).unwrap();
    store.heads().unwrap().iter().map(|h| h.seq).sum()
}

#[test]
fn flushed_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged_total = 0;
    for round in 0..20u64 {
        let before = stored_count(dir.path());
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill at a different point each round, while the child is mid-stream.
        let deadline = Instant::now() + Duration::from_millis(40 + (round * 37) % 200);
        let mut acknowledged = 0;
        while Instant::now() < deadline || acknowledged == 0 {
            let line = lines.next().expect("child output").unwrap();
            if let Some(n) = line.strip_prefix("flushed ") {
                acknowledged = n.parse().unwrap();
            }
        }
        // SIGKILL: no destructor, no drain, no final sync.
        child.kill().unwrap();
        child.wait().unwrap();
        let after = stored_count(dir.path());
        assert!(
            after >= before + acknowledged,
            "round {round}: {acknowledged} acknowledged after {before}, but only {after} stored"
        );
        acknowledged_total += acknowledged;
        let report = common::assert_verifies(dir.path());
        assert_eq!(report.chains.iter().map(|c| c.count).sum::<u64>(), after);
    }
    assert!(acknowledged_total >= 20 * 50);
}
