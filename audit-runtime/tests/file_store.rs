//! The chained JSONL file store: restart, rotation, seals, torn lines, locking.

mod common;

use std::io::Write;
use std::time::Duration;

use audit_runtime::verify::{DamageKind, verify_paths};
use audit_runtime::{AuditEvent, AuditLayer, Category, FailureMode, FileStore, FileStoreOptions, StoreError};
use tracing_subscriber::prelude::*;

fn emit_n(layer: AuditLayer, tenant: &str, range: std::ops::Range<u32>) {
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for i in range {
            AuditEvent::new("invoice.update", Category::Mutation)
                .tenant(tenant)
                .resource("invoice", i)
                .changes(
                    Some(serde_json::json!({"amount": i})),
                    Some(serde_json::json!({"amount": i + 1})),
                )
                .emit_with(FailureMode::Refuse)
                .unwrap();
        }
    });
}

#[test]
fn a_reopened_store_continues_every_chain() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let (layer, guard) = common::file_layer(dir.path());
        emit_n(layer.clone(), "acme", round * 10..round * 10 + 10);
        emit_n(layer, "globex", round * 5..round * 5 + 5);
        guard.shutdown().unwrap();
    }
    let acme = common::records(dir.path(), "acme");
    assert_eq!(
        acme.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    assert!(
        acme.windows(2)
            .all(|w| w[1].prev_hash == w[0].hash && w[1].timestamp >= w[0].timestamp)
    );
    assert_eq!(common::records(dir.path(), "globex").len(), 15);
    let report = common::assert_verifies(dir.path());
    assert_eq!(
        report.chains.iter().find(|c| c.chain == "acme").unwrap().sealed_through,
        Some(30)
    );
}

#[test]
fn segments_rotate_by_size_and_old_ones_become_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FileStoreOptions {
        max_segment_bytes: 4096,
        ..Default::default()
    };
    let (layer, guard) = AuditLayer::builder(FileStore::with_options(dir.path(), opts).unwrap())
        .max_batch(4)
        .build()
        .unwrap();
    emit_n(layer, "acme", 0..100);
    guard.shutdown().unwrap();
    let segments = audit_runtime::store::file::segments(&dir.path().join("chains/acme")).unwrap();
    assert!(segments.len() > 3, "{segments:?}");
    for old in &segments[..segments.len() - 1] {
        assert!(
            std::fs::metadata(old).unwrap().permissions().readonly(),
            "{}",
            old.display()
        );
    }
    // Each segment is named after its first seq.
    let first_line = std::fs::read_to_string(&segments[1]).unwrap();
    let first = audit_runtime::Record::parse(first_line.lines().next().unwrap().as_bytes()).unwrap();
    assert_eq!(
        segments[1].file_name().unwrap().to_str().unwrap(),
        format!("{:020}.jsonl", first.seq)
    );
    let report = common::assert_verifies(dir.path());
    assert_eq!(report.chains[0].count, 100);
}

#[test]
fn segments_rotate_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FileStoreOptions {
        max_segment_age: Duration::from_millis(30),
        ..Default::default()
    };
    let (layer, guard) = AuditLayer::builder(FileStore::with_options(dir.path(), opts).unwrap())
        .build()
        .unwrap();
    emit_n(layer.clone(), "acme", 0..3);
    guard.flush().unwrap();
    std::thread::sleep(Duration::from_millis(60));
    emit_n(layer, "acme", 3..6);
    guard.shutdown().unwrap();
    let segments = audit_runtime::store::file::segments(&dir.path().join("chains/acme")).unwrap();
    assert_eq!(segments.len(), 2);
    common::assert_verifies(dir.path());
}

#[test]
fn a_torn_last_line_is_kept_aside_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    emit_n(layer, "acme", 0..5);
    guard.shutdown().unwrap();
    let segment = dir.path().join("chains/acme/00000000000000000001.jsonl");
    let torn = br#"{"v":1,"id":"0192","chain":"acme","seq":6,"timest"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(torn)
        .unwrap();

    // Before repair, verify notes the unfinished line (it may be a write in progress) and
    // checks everything before it; the same bytes in a lone file are a malformed line.
    let report = verify_paths(&[dir.path()], &Default::default()).unwrap();
    assert!(report.is_ok(), "{:?}", report.damages().collect::<Vec<_>>());
    assert_eq!(report.unfinished.len(), 1);
    assert_eq!(report.unfinished[0].line, 6);
    let report = verify_paths(&[&segment], &Default::default()).unwrap();
    assert_eq!(report.damages().next().unwrap().kind, DamageKind::Malformed);

    let (layer, guard) = common::file_layer(dir.path());
    emit_n(layer, "acme", 5..8);
    guard.shutdown().unwrap();
    let records = common::records(dir.path(), "acme");
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("torn"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        std::fs::read(&kept[0]).unwrap(),
        torn,
        "the torn bytes are kept, not deleted"
    );
    let report = common::assert_verifies(dir.path());
    assert_eq!(report.torn_fragments, kept);
}

#[test]
fn one_process_writes_a_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _first = FileStore::open(dir.path()).unwrap();
    match FileStore::open(dir.path()) {
        Err(StoreError::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected a lock error, got {other:?}"),
    }
}

#[test]
fn truncating_the_newest_records_is_detected_by_the_seals() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    emit_n(layer, "acme", 0..10);
    guard.shutdown().unwrap();
    let segment = dir.path().join("chains/acme/00000000000000000001.jsonl");
    let text = std::fs::read_to_string(&segment).unwrap();
    let kept: String = text.lines().take(7).map(|l| format!("{l}\n")).collect();
    std::fs::write(&segment, kept).unwrap();
    let report = verify_paths(&[dir.path()], &Default::default()).unwrap();
    let damage = report.damages().next().expect("truncation detected");
    assert_eq!(
        (damage.kind, damage.seq, damage.chain.as_deref()),
        (DamageKind::Truncated, Some(8), Some("acme"))
    );
}

#[test]
fn the_oldest_records_of_a_store_cannot_silently_go() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    emit_n(layer, "acme", 0..10);
    guard.shutdown().unwrap();
    let segment = dir.path().join("chains/acme/00000000000000000001.jsonl");
    let text = std::fs::read_to_string(&segment).unwrap();
    let kept: String = text.lines().skip(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&segment, kept).unwrap();
    let report = verify_paths(&[dir.path()], &Default::default()).unwrap();
    let damage = report.damages().next().expect("missing head detected");
    assert_eq!((damage.kind, damage.seq), (DamageKind::Missing, Some(1)));
}

#[test]
fn seals_that_disagree_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    emit_n(layer, "acme", 0..5);
    guard.shutdown().unwrap();
    let seals = std::fs::read_to_string(dir.path().join("seals/acme.jsonl")).unwrap();
    let real: audit_runtime::Seal = serde_json::from_str(seals.lines().last().unwrap()).unwrap();
    let forged = audit_runtime::Seal {
        hash: audit_runtime::ChainHash([7; 32]),
        ..real.clone()
    };
    let other = dir.path().join("other-seals.jsonl");
    std::fs::write(&other, format!("{}\n", serde_json::to_string(&forged).unwrap())).unwrap();
    let opts = audit_runtime::verify::VerifyOptions {
        seals: vec![other.clone()],
        ..Default::default()
    };
    let report = verify_paths(&[dir.path()], &opts).unwrap();
    let damage = report.damages().next().expect("conflict reported");
    assert_eq!((damage.kind, damage.seq), (DamageKind::Forged, Some(real.seq)));
    assert_eq!(damage.location.path, other);
    assert!(damage.detail.contains("disagree"), "{}", damage.detail);
}

/// An idle writer sealed nothing at shutdown: the stop request arrived while the writer
/// waited for work, and the same round ended the loop on its stale "not stopping" view, so
/// Ctrl-C on a quiet service left its chains unsealed (found with the example service).
#[test]
fn stopping_an_idle_writer_seals_every_chain() {
    for stop in ["shutdown", "drop"] {
        let dir = tempfile::tempdir().unwrap();
        let (layer, guard) = common::file_layer(dir.path());
        emit_n(layer.clone(), "acme", 0..2);
        guard.flush().unwrap();
        // Longer than the commit interval: the writer goes back to waiting for work.
        std::thread::sleep(Duration::from_millis(300));
        match stop {
            "shutdown" => guard.shutdown().unwrap(),
            _ => drop(guard),
        }
        drop(layer);
        let report = common::assert_verifies(dir.path());
        assert_eq!(
            report.chains.iter().find(|c| c.chain == "acme").unwrap().sealed_through,
            Some(2),
            "stopped by {stop}"
        );
    }
}
