//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use std::path::Path;

use audit_runtime::{AuditLayer, FileStore, Record, WriterGuard};

/// A layer and writer over a file store in `dir`.
pub fn file_layer(dir: &Path) -> (AuditLayer, WriterGuard) {
    AuditLayer::builder(FileStore::open(dir).expect("open store"))
        .build()
        .expect("start writer")
}

/// Every record of chain `chain` in the store at `dir`, in order, parsed.
pub fn records(dir: &Path, chain: &str) -> Vec<Record> {
    lines(dir, chain)
        .iter()
        .map(|l| Record::parse(l.as_bytes()).expect("valid record"))
        .collect()
}

/// Every line of chain `chain` in the store at `dir`, in order.
pub fn lines(dir: &Path, chain: &str) -> Vec<String> {
    let chain_dir = dir.join("chains").join(audit_runtime::store::file::encode_chain(chain));
    let mut out = Vec::new();
    for segment in audit_runtime::store::file::segments(&chain_dir).expect("segments") {
        let text = std::fs::read_to_string(segment).expect("read segment");
        out.extend(text.lines().map(str::to_owned));
    }
    out
}

/// Verifies the store and panics with the damage if any.
pub fn assert_verifies(dir: &Path) -> audit_runtime::verify::VerifyReport {
    let report = audit_runtime::verify::verify_paths(&[dir], &Default::default()).expect("verify runs");
    let damages: Vec<String> = report.damages().map(|d| d.to_string()).collect();
    assert!(damages.is_empty(), "damage found: {damages:#?}");
    report
}
