//! The hardening findings of the attack review, each reproduced as it was reported: no input,
//! fault or second process may silently cost the audit trail or take the host down.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit_runtime::store::{ChainBatch, ChainHead, Seal, SetAside, Store, SyncJob};
use audit_runtime::verify::{VerifyOptions, verify_paths};
use audit_runtime::{
    AuditError, AuditEvent, AuditLayer, Category, Changes, FailureMode, FileStore, Limits, OnFull, StoreError,
    StoreFailure,
};
use tracing_subscriber::prelude::*;

fn event(i: u64) -> AuditEvent {
    AuditEvent::new("invoice.update", Category::Mutation).resource("invoice", i)
}

/// Runs `f` with `layer` as this thread's subscriber.
fn with_layer<T>(layer: AuditLayer, f: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f)
}

/// A file store that refuses every record whose line holds a NUL (as PostgreSQL's `text`
/// columns did): the store's content refusal, not a passing fault.
struct RefusesNul(FileStore);

impl Store for RefusesNul {
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        self.0.heads()
    }
    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
        let lines = batch.chain_onto(&mut head.clone()).to_vec();
        if lines.windows(6).any(|w| w == b"\\u0000") {
            return Err(StoreError::Rejected {
                chain: batch.chain().to_owned(),
                reason: "invalid byte sequence for encoding \"UTF8\": 0x00".into(),
            });
        }
        self.0.append(batch, head)
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        self.0.sync()
    }
    fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        self.0.sync_job()
    }
    fn seal(&mut self, seals: &[Seal]) -> Result<(), StoreError> {
        self.0.seal(seals)
    }
    fn set_aside(&mut self, records: &[SetAside]) -> Result<(), StoreError> {
        self.0.set_aside(records)
    }
}

#[test]
fn one_refused_record_never_stops_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = AuditLayer::builder(RefusesNul(FileStore::open(dir.path()).unwrap()))
        .build()
        .unwrap();
    with_layer(layer, || {
        for i in 0..6000u64 {
            let id = if i % 600 == 7 {
                format!("inv\0{i}")
            } else {
                i.to_string()
            };
            let tenant = if i % 2 == 0 { "acme" } else { "globex" };
            AuditEvent::new("invoice.update", Category::Mutation)
                .tenant(tenant)
                .resource("invoice", id)
                .emit_with(FailureMode::Refuse)
                .unwrap();
        }
    });
    guard.flush().unwrap();
    assert_eq!(guard.set_aside_count(), 10);
    let report = common::assert_verifies(dir.path());
    assert_eq!(report.chains.iter().map(|c| c.count).sum::<u64>(), 5990);
    // Kept, with the reason, never dropped.
    let aside = std::fs::read_to_string(dir.path().join("set-aside/records.jsonl")).unwrap();
    let kept: Vec<serde_json::Value> = aside.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(kept.len(), 10);
    assert!(kept.iter().all(|k| k["reason"].as_str().unwrap().contains("0x00")));
    assert_eq!(kept[0]["event"]["resource"]["id"], "inv\u{0}7");
    guard.shutdown().unwrap();
}

#[test]
fn a_long_tenant_never_disables_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = [
        "a".repeat(256),
        "b".repeat(255),
        "租".repeat(30),
        "x".repeat(10_000),
        "acme".to_owned(),
    ];
    let (layer, guard) = common::file_layer(dir.path());
    with_layer(layer, || {
        for round in 0..3 {
            for tenant in &tenants {
                event(round)
                    .tenant(tenant.as_str())
                    .emit_with(FailureMode::Refuse)
                    .unwrap();
            }
        }
    });
    guard.flush().unwrap();
    guard.seal().unwrap();
    guard.shutdown().unwrap();
    let report = common::assert_verifies(dir.path());
    assert_eq!(report.chains.len(), tenants.len());
    for chain in &report.chains {
        assert_eq!(chain.count, 3, "{}", chain.chain.len());
        assert_eq!(chain.sealed_through, Some(3), "every chain is sealed");
    }
    for entry in std::fs::read_dir(dir.path().join("chains")).unwrap() {
        assert!(entry.unwrap().file_name().len() <= 150);
    }
    // Reopened: every chain continues.
    let (layer, guard) = common::file_layer(dir.path());
    with_layer(layer, || event(9).tenant(tenants[0].as_str()).emit().unwrap());
    guard.shutdown().unwrap();
    let report = common::assert_verifies(dir.path());
    assert_eq!(report.chains.iter().map(|c| c.count).sum::<u64>(), 16);
}

/// A tmpfs of `size` mounted for the test, unmounted on drop; `None` (said loudly) where
/// mounting is not allowed, and a failure under `CI=true`, where it must be.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs(dir)),
            other if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true, but a tmpfs cannot be mounted for the full-disk test: {other:?}")
            }
            other => {
                eprintln!("\n*** SKIPPED: cannot mount a tmpfs ({other:?}); run as root for the full-disk test.\n");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Fills the disk but for about `room` bytes.
    fn fill(&self, room: u64) {
        let mut filler = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while filler.write_all(&block).is_ok() {}
        drop(filler);
        let len = std::fs::metadata(self.path().join("filler")).unwrap().len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path().join("filler"))
            .unwrap();
        file.set_len(len.saturating_sub(room)).unwrap();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn flush_never_says_ok_after_events_were_lost_on_a_full_disk() {
    let Some(disk) = Tmpfs::mount("4m") else { return };
    let store = disk.path().join("log");
    // What the attack ran against: the writer refuses events while its store fails, and the
    // application goes on (warn and count).
    let (layer, guard) = AuditLayer::builder(FileStore::open(&store).unwrap())
        .on_store_failure(StoreFailure::Reject)
        .capacity(256)
        .max_batch(32)
        .build()
        .unwrap();
    disk.fill(64 << 10);
    let payload = "p".repeat(300);
    let lost_before = audit_runtime::undelivered_count();
    let emitted = with_layer(layer, || {
        let mut i = 0;
        while guard.failure().is_none() {
            assert!(i < 100_000, "the disk never filled");
            event(i)
                .context("note", payload.as_str())
                .emit_with(FailureMode::Warn)
                .unwrap();
            i += 1;
            std::thread::sleep(Duration::from_micros(50));
        }
        // While the disk is full: warn mode never fails the caller, and the events are lost.
        for _ in 0..500 {
            event(i)
                .context("note", payload.as_str())
                .emit_with(FailureMode::Warn)
                .unwrap();
            i += 1;
        }
        i
    });
    let lost = audit_runtime::undelivered_count() - lost_before;
    assert!(lost >= 500, "{lost} lost");
    let failing = guard.flush().expect_err("no flush is Ok while the disk is full");
    assert!(failing.to_string().contains("No space left"), "{failing}");

    disk.free();
    wait_until("the writer recovers", || guard.failure().is_none());
    match guard.flush() {
        Err(AuditError::Lost { count }) => assert_eq!(count, lost),
        other => panic!("after the outage, flush must say events were lost: {other:?}"),
    }
    guard.flush().expect("clean once reported");
    guard.shutdown().unwrap();
    let report = common::assert_verifies(&store);
    let stored: u64 = report.chains.iter().map(|c| c.count).sum();
    assert_eq!(stored + lost, emitted, "every event is either stored or counted lost");
}

#[test]
fn a_full_disk_loses_nothing_while_the_writer_retries() {
    let Some(disk) = Tmpfs::mount("2m") else { return };
    let store = disk.path().join("log");
    // The default: keep retrying; the bounded queue pushes back on emitters.
    let (layer, guard) = AuditLayer::builder(FileStore::open(&store).unwrap())
        .capacity(64)
        .max_batch(16)
        .on_full(OnFull::Block)
        .build()
        .unwrap();
    disk.fill(32 << 10);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let emitted = Arc::new(Mutex::new(0u64));
    let count = Arc::clone(&emitted);
    let payload = "p".repeat(300);
    let producer = std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..2000 {
                event(i)
                    .context("note", payload.as_str())
                    .emit_with(FailureMode::Refuse)
                    .unwrap();
                *count.lock().unwrap() += 1;
            }
        })
    });
    wait_until("the disk is full", || guard.failure().is_some());
    std::thread::sleep(Duration::from_millis(200));
    let stuck = *emitted.lock().unwrap();
    assert!(
        !producer.is_finished(),
        "the producer waits while the disk is full ({stuck} emitted)"
    );
    assert!(guard.flush().is_err(), "no flush is Ok while the disk is full");
    disk.free();
    producer.join().unwrap();
    guard.flush().unwrap();
    guard.shutdown().unwrap();
    let ids: Vec<String> = common::records(&store, "default")
        .iter()
        .map(|r| r.resource.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(
        ids,
        (0..2000).map(|i| i.to_string()).collect::<Vec<_>>(),
        "none lost, in order"
    );
    common::assert_verifies(&store);
}

/// A JSON value nested `depth` levels, built without recursion (`json!` would serialize the
/// inner value again at every level).
fn nested(depth: usize) -> serde_json::Value {
    let mut value = serde_json::Value::from("bottom");
    for _ in 0..depth {
        let mut object = serde_json::Map::new();
        object.insert("a".into(), value);
        value = serde_json::Value::Object(object);
    }
    value
}

#[test]
fn deep_changes_never_abort_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    let depths = [5, 31, 32, 129, 1000, 5000, 15000, 100_000];
    with_layer(layer, || {
        for (i, depth) in depths.iter().enumerate() {
            event(i as u64)
                .changes(
                    Some(nested(*depth)),
                    Some(serde_json::Value::Array(vec![nested(*depth)])),
                )
                .emit_with(FailureMode::Refuse)
                .unwrap();
        }
    });
    guard.shutdown().unwrap();
    // Every reader of the project reads every record back, strictly.
    let strict = VerifyOptions {
        strict: true,
        ..Default::default()
    };
    let report = verify_paths(&[dir.path()], &strict).unwrap();
    assert!(report.is_ok(), "{:?}", report.damages().collect::<Vec<_>>());
    let records = common::records(dir.path(), "default");
    let depth_of = |v: &serde_json::Value| {
        let (mut d, mut v) = (0, v);
        while let Some(inner) = v.get("a") {
            d += 1;
            v = inner;
        }
        (d, v.clone())
    };
    let (kept, bottom) = depth_of(records[0].changes.as_ref().unwrap().before.as_ref().unwrap());
    assert_eq!(
        (kept, bottom),
        (5, serde_json::json!("bottom")),
        "shallow values are untouched"
    );
    let (kept, marker) = depth_of(records[7].changes.as_ref().unwrap().before.as_ref().unwrap());
    assert_eq!(kept, Changes::MAX_DEPTH - 1);
    assert!(marker.as_str().unwrap().starts_with("…[truncated:"), "{marker}");
    let mut csv = Vec::new();
    audit_runtime::export::export_paths(
        &[dir.path()],
        &Default::default(),
        audit_runtime::export::Format::Csv,
        &mut csv,
    )
    .unwrap();
    // And Python's json, which the README's verifier uses.
    let segment = audit_runtime::store::file::segments(&dir.path().join("chains/default")).unwrap();
    let python = Command::new("python3")
        .args([
            "-c",
            "import json,sys\nfor l in open(sys.argv[1],'rb'): json.loads(l)\nprint('ok')",
        ])
        .arg(&segment[0])
        .output()
        .expect("python3 runs");
    assert_eq!(
        String::from_utf8_lossy(&python.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
}

#[test]
fn every_member_and_the_record_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits::default();
    let (layer, guard) = common::file_layer(dir.path());
    let huge = "\u{1}".repeat(1 << 20);
    with_layer(layer, || {
        let mut e = AuditEvent::new("invoice.update", Category::Mutation)
            .actor(audit_runtime::Actor::user(huge.as_str(), audit_runtime::AuthMethod::Sso).with_name(huge.as_str()))
            .resource("invoice", huge.as_str())
            .failure(huge.as_str())
            .changes(Some(serde_json::json!({ "x": huge })), None);
        for key in ["ip", "user_agent", "request_id", "session_id", "trace_id"] {
            e = e.context(key, huge.as_str());
        }
        for k in 0..1000 {
            e = e.context(&format!("{k:05}{}", "k".repeat(10_000)), huge.as_str());
        }
        e.emit_with(FailureMode::Refuse).unwrap();
    });
    guard.shutdown().unwrap();
    let line = common::lines(dir.path(), "default").remove(0);
    assert!(line.len() <= limits.max_record_bytes(), "{} bytes", line.len());
    assert!(limits.max_record_bytes() <= audit_runtime::chain::read::MAX_LINE_BYTES);
    let record = common::records(dir.path(), "default").remove(0);
    let context = record.context.unwrap();
    assert_eq!(context.extra["truncated_context_keys"], "968");
    assert!(
        context.extra.keys().all(|k| k.len() <= limits.max_key_bytes + 40),
        "keys are cut"
    );
    assert!(context.ip.unwrap().ends_with("bytes]"), "values are cut and marked");
    assert!(record.changes.unwrap().before.unwrap()["truncated"] == true);
    common::assert_verifies(dir.path());
}

#[test]
fn limits_that_allow_unreadable_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_changes_bytes: 64 << 20,
        ..Limits::default()
    };
    let err = AuditLayer::builder(FileStore::open(dir.path()).unwrap())
        .limits(limits)
        .build()
        .map(drop)
        .unwrap_err();
    assert!(err.to_string().contains("lower them"), "{err}");
}

const LOCK_CHILD_ENV: &str = "AUDIT_LOCK_CHILD_DIR";

/// Runs inside a child process only: opens the store, says so, and holds it until stdin
/// closes; or, with `try`, reports whether it could open it.
#[test]
#[ignore = "child process of `deleting_the_lock_never_lets_a_second_writer_in`"]
fn lock_child() {
    let Ok(dir) = std::env::var(LOCK_CHILD_ENV) else { return };
    match FileStore::open(&dir) {
        Ok(store) if std::env::var("AUDIT_LOCK_CHILD_TRY").is_ok() => {
            drop(store);
            println!("opened");
        }
        Ok(_store) => {
            println!("holding");
            std::io::stdout().flush().unwrap();
            let _ = std::io::stdin().read_line(&mut String::new());
        }
        Err(e) => println!("refused: {e}"),
    }
}

fn lock_child_process(dir: &Path, try_only: bool) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "lock_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(LOCK_CHILD_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if try_only {
        command.env("AUDIT_LOCK_CHILD_TRY", "1");
    }
    command.spawn().unwrap()
}

fn first_word(child: &mut std::process::Child) -> String {
    let out = BufReader::new(child.stdout.as_mut().unwrap());
    for line in out.lines() {
        let line = line.unwrap();
        // The test harness prints `test lock_child ... ` before the child's own words.
        for word in ["holding", "opened", "refused"] {
            if let Some(at) = line.find(word) {
                return line[at..].to_owned();
            }
        }
    }
    panic!("the child said nothing")
}

#[test]
fn deleting_the_lock_never_lets_a_second_writer_in() {
    let dir = tempfile::tempdir().unwrap();
    drop(FileStore::open(dir.path()).unwrap());
    let mut holder = lock_child_process(dir.path(), false);
    assert_eq!(first_word(&mut holder), "holding");
    // The insider's move: remove whatever lock file there is, then start a second writer.
    let _ = std::fs::remove_file(dir.path().join(".lock"));
    let mut second = lock_child_process(dir.path(), true);
    let said = first_word(&mut second);
    second.wait().unwrap();
    assert!(
        said.starts_with("refused") && said.contains("another process is writing"),
        "{said}"
    );
    drop(holder.stdin.take());
    holder.wait().unwrap();
    // Once the holder is gone, the store opens again.
    let mut third = lock_child_process(dir.path(), true);
    assert_eq!(first_word(&mut third), "opened");
    third.wait().unwrap();
}

#[test]
fn a_failing_chain_never_stops_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let broken = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&broken);
    // Appends to chain `bad` fail (its disk, say); chain `good` must not notice.
    struct OneChainFails(FileStore, Arc<AtomicBool>);
    impl Store for OneChainFails {
        fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
            self.0.heads()
        }
        fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
            if batch.chain() == "bad" && self.1.load(Ordering::SeqCst) {
                return Err(StoreError::Config("bad: input/output error (simulated)".into()));
            }
            self.0.append(batch, head)
        }
        fn sync(&mut self) -> Result<(), StoreError> {
            self.0.sync()
        }
        fn seal(&mut self, seals: &[Seal]) -> Result<(), StoreError> {
            self.0.seal(seals)
        }
    }
    let (layer, guard) = AuditLayer::builder(OneChainFails(FileStore::open(dir.path()).unwrap(), flag))
        .build()
        .unwrap();
    with_layer(layer, || {
        for i in 0..100 {
            event(i).tenant("good").emit_with(FailureMode::Refuse).unwrap();
            event(i).tenant("bad").emit_with(FailureMode::Refuse).unwrap();
        }
    });
    wait_until("chain `good` is written", || {
        common::lines(dir.path(), "good").len() == 100
    });
    let failure = guard.flush().unwrap_err().to_string();
    assert!(
        failure.contains("chain `bad`") && !failure.contains("chain `good`"),
        "{failure}"
    );
    assert!(guard.seal().is_err(), "a seal request reports the failing chain");
    broken.store(false, Ordering::SeqCst);
    wait_until("chain `bad` recovers", || guard.failure().is_none());
    guard.seal().unwrap();
    guard.shutdown().unwrap();
    let report = common::assert_verifies(dir.path());
    assert!(
        report
            .chains
            .iter()
            .all(|c| c.count == 100 && c.sealed_through == Some(100))
    );
}

#[test]
fn an_event_on_a_thread_without_the_layer_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::file_layer(dir.path());
    let _default = tracing_subscriber::registry().with(layer).set_default();
    let err = std::thread::spawn(|| event(1).emit_with(FailureMode::Refuse).unwrap_err())
        .join()
        .unwrap();
    assert!(err.to_string().contains("this process runs an audit writer"), "{err}");
    assert!(err.to_string().contains("set_global_default"), "{err}");
    drop(guard);
}
