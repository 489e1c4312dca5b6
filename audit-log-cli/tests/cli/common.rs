//! A real store written by the runtime, copies of it to tamper with, line surgery that keeps
//! or recomputes hashes, and a way to run the real `audit` binary.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use audit::{Actor, AuditEvent, AuditLayer, AuditScope, AuthMethod, Category, ChainHash, FileStore, Store, Timestamp};
use tempfile::TempDir;
use tracing_subscriber::prelude::*;

/// Records per chain in [`build_store`].
pub const ACME: u64 = 20;
/// Records of chain `globex` in [`build_store`].
pub const GLOBEX: u64 = 8;
/// The seq of each chain sealed halfway (by `WriterGuard::seal`); the last seq is sealed at
/// shutdown.
pub const ACME_MID_SEAL: u64 = 10;
/// Resource id of acme's seq 13: a spreadsheet formula that CSV export must neutralise.
pub const FORMULA: &str = "=HYPERLINK(\"http://evil.example\",\"click\")";

/// Time of acme's record `seq`: one per hour from 2026-03-01 00:00 UTC.
pub fn acme_time(seq: u64) -> Timestamp {
    let base = Timestamp::parse("2026-03-01T00:00:00Z").unwrap();
    Timestamp::from_unix_micros(base.unix_micros() + (seq as i64 - 1) * 3_600_000_000)
}

/// A file store written by the runtime: chain `acme` with [`ACME`] records (seals at
/// [`ACME_MID_SEAL`] and [`ACME`]) and chain `globex` with [`GLOBEX`] records (seals at 5
/// and 8).
pub fn build_store() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    fill(FileStore::open(dir.path()).unwrap());
    dir
}

/// A SQLite store filled like [`build_store`]: the directory holding it, and its URL.
pub fn build_sqlite() -> (TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    fill(audit::sqlite::SqliteStore::open(&path).unwrap());
    (dir, sqlite_url(&path))
}

/// The `sqlite://` URL of a database file.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Writes the fixture's records into `store` through the real layer and writer: chain
/// `acme` with [`ACME`] records, one an hour from [`acme_time`]`(1)`, and chain `globex` with
/// [`GLOBEX`]; both sealed halfway and at the end.
pub fn fill<S: Store>(store: S) {
    let (layer, guard) = AuditLayer::builder(store).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let acme = AuditScope::new()
        .actor(Actor::user("usr_1", AuthMethod::Sso))
        .tenant("acme");
    let globex = AuditScope::new()
        .actor(Actor::service("svc_sync", AuthMethod::ApiKey))
        .tenant("globex");
    let emit_acme = |seq: u64| {
        let (action, category) = if seq.is_multiple_of(2) {
            ("billing.update", Category::Mutation)
        } else {
            ("customer_record.read", Category::DataAccess)
        };
        let id = if seq == 13 {
            FORMULA.to_owned()
        } else {
            format!("cust_{seq}")
        };
        let event = AuditEvent::new(action, category)
            .resource("customer", id)
            .at(acme_time(seq));
        let event = if seq.is_multiple_of(5) {
            event.actor(Actor::user("usr_2", AuthMethod::Mfa))
        } else {
            event
        };
        acme.in_scope(|| event.context("ip", "203.0.113.7").emit()).unwrap();
    };
    let emit_globex = |seq: u64| {
        let event = AuditEvent::new("user.login", Category::Authentication).resource("user", seq);
        globex.in_scope(|| event.emit()).unwrap();
    };
    tracing::subscriber::with_default(subscriber, || {
        (1..=ACME_MID_SEAL).for_each(&emit_acme);
        (1..=5).for_each(&emit_globex);
        guard.seal().unwrap();
        (ACME_MID_SEAL + 1..=ACME).for_each(&emit_acme);
        (6..=GLOBEX).for_each(&emit_globex);
    });
    guard.flush().unwrap();
    drop(guard); // seals every head and releases the store's lock
}

/// A copy of the store in `src`, to tamper with.
pub fn copy_store(src: &Path) -> TempDir {
    let dst = tempfile::tempdir().unwrap();
    copy_dir(src, dst.path());
    dst
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// The one segment of `chain` in a store (the fixtures never rotate).
pub fn segment(store: &Path, chain: &str) -> PathBuf {
    store.join("chains").join(chain).join("00000000000000000001.jsonl")
}

/// The lines of a file, without their newlines.
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Writes `lines`, each ending in a newline.
pub fn write_lines(path: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

const HASH_MEMBER_LEN: usize = r#","hash":""#.len() + 64 + r#""}"#.len();

/// The `hash` member of a record line.
pub fn hash_of(line: &str) -> String {
    line[line.len() - 66..line.len() - 2].to_owned()
}

/// The `prev_hash` member of a record line.
pub fn prev_hash_of(line: &str) -> String {
    let at = line.find(r#""prev_hash":""#).unwrap() + r#""prev_hash":""#.len();
    line[at..at + 64].to_owned()
}

/// `line` with a valid `hash` for its (possibly altered) body: what a forger with write
/// access does, since the hash needs no key.
pub fn rehash(line: &str) -> String {
    let body_open = &line[..line.len() - HASH_MEMBER_LEN];
    let hash = ChainHash::of(format!("{body_open}}}").as_bytes());
    format!(r#"{body_open},"hash":"{hash}"}}"#)
}

/// `line` linked to `prev` and rehashed.
pub fn relink(line: &str, prev: &str) -> String {
    rehash(&line.replace(&prev_hash_of(line), prev))
}

/// Runs the `audit` binary.
pub fn audit<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_audit")).args(args).output().unwrap()
}

/// stdout of a run, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// stderr of a run, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// `audit verify --json PATHS...`: the exit code and the parsed report.
pub fn verify_json<S: AsRef<OsStr>>(paths: &[S]) -> (i32, serde_json::Value) {
    let mut args: Vec<&OsStr> = vec!["verify".as_ref(), "--json".as_ref()];
    args.extend(paths.iter().map(AsRef::as_ref));
    let out = audit(args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}): {}{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap(), report)
}

/// The report of one chain in a `--json` report.
pub fn chain<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["chains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chain"] == name)
        .unwrap_or_else(|| panic!("no chain {name} in {report:#}"))
}

/// Runs the `audit` binary in `dir`.
pub fn audit_in<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_audit"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// Runs the README's standalone verifier, `scripts/verify_chain.py`, on `file`.
pub fn python_verify(file: &Path) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify_chain.py");
    Command::new("python3")
        .arg(script)
        .arg(file)
        .output()
        .expect("python3 runs (the README's verifier needs only the standard library)")
}

/// Asserts that a run exited with `code`, showing its output otherwise.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}
