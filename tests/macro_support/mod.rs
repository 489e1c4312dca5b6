//! Helpers of the `#[audited]` runtime tests: a real file store behind an `AuditLayer`, and
//! the records it wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use tracing_subscriber::prelude::*;

/// What a block recorded: its records (parsed) and the raw lines, all verified.
pub struct Recorded {
    pub records: Vec<Value>,
    pub lines: Vec<String>,
}

impl Recorded {
    /// The only record of `action`.
    pub fn one(&self, action: &str) -> &Value {
        let found: Vec<&Value> = self.records.iter().filter(|r| r["action"] == action).collect();
        assert_eq!(
            found.len(),
            1,
            "expected one `{action}` record, got {:#?}",
            self.records
        );
        found[0]
    }
}

/// Runs `f` with an audit sink installed on this thread, then flushes, verifies the chains
/// and returns what was recorded.
pub fn record<R>(f: impl FnOnce() -> R) -> (R, Recorded) {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = audit::AuditLayer::builder(audit::FileStore::open(dir.path()).unwrap())
        .build()
        .unwrap();
    let result = tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    guard.flush().unwrap();
    drop(guard);
    let report = audit::verify::verify_paths(&[dir.path()], &Default::default()).unwrap();
    assert!(report.is_ok(), "the recorded chains must verify: {report:#?}");
    let mut lines = Vec::new();
    for file in jsonl_files(&dir.path().join("chains")) {
        let text = std::fs::read_to_string(file).unwrap();
        lines.extend(text.lines().map(str::to_owned));
    }
    let records = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    (result, Recorded { records, lines })
}

/// Like [`record`], running a future on a current-thread tokio runtime.
pub fn record_async<F: std::future::Future>(f: F) -> (F::Output, Recorded) {
    record(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
}

fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(jsonl_files(&path));
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
    out.sort();
    out
}
