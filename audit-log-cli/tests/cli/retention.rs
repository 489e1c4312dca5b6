//! `audit retention`: dry runs that say what would go and why the rest stays, purges on file,
//! SQLite and PostgreSQL stores after which the chains still verify, presets, and errors.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use audit::store::append_events;
use audit::{AuditEvent, Category, FileStore, FileStoreOptions, Store, Timestamp};
use serde_json::Value;

use crate::common::*;
use crate::pg::TestDb;

/// The `--now` of every run here.
const NOW: &str = "2030-01-01T00:00:00Z";

/// The retention configuration documented in `audit retention --help`: default `soc2`
/// (365 days), `initech` under `hipaa`, `globex` on legal hold.
fn config_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/retention.toml")
}

fn days_before(now: Timestamp, days: i64) -> Timestamp {
    Timestamp::from_unix_micros(now.unix_micros() - days * 86_400_000_000)
}

fn days_before_now(days: i64) -> Timestamp {
    days_before(Timestamp::parse(NOW).unwrap(), days)
}

/// Records of different ages at [`NOW`] (see [`fill_aged_at`]).
fn fill_aged<S: Store>(store: &mut S) {
    fill_aged_at(store, Timestamp::parse(NOW).unwrap());
}

/// Records of different ages at `now`, one append each: `acme` 800, 700, 400, 10 and 1 days
/// old; `globex` 900 and 5; `initech` 800 and 1. Under the fixture, acme's first three go.
fn fill_aged_at<S: Store>(store: &mut S, now: Timestamp) {
    let aged = [
        ("acme", 800),
        ("globex", 900),
        ("initech", 800),
        ("acme", 700),
        ("acme", 400),
        ("acme", 10),
        ("globex", 5),
        ("acme", 1),
        ("initech", 1),
    ];
    for (tenant, days) in aged {
        let event = AuditEvent::new("user.login", Category::Authentication)
            .tenant(tenant)
            .resource("user", format!("usr_{days}"))
            .at(days_before(now, days));
        append_events(store, [event]).unwrap();
    }
}

/// A file store of [`fill_aged`] with one segment per record.
fn aged_file_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let opts = FileStoreOptions {
        max_segment_bytes: 1,
        ..Default::default()
    };
    fill_aged(&mut FileStore::with_options(dir.path(), opts).unwrap());
    dir
}

/// `audit retention` with `args` on `store`, at [`NOW`].
fn retention(store: &OsStr, args: &[&OsStr]) -> std::process::Output {
    retention_at(NOW, store, args)
}

/// `audit retention` with `args` on `store`, at `now`.
fn retention_at(now: &str, store: &OsStr, args: &[&OsStr]) -> std::process::Output {
    let mut all: Vec<&OsStr> = vec!["retention".as_ref(), "--now".as_ref(), now.as_ref()];
    all.extend_from_slice(args);
    all.push(store);
    audit(all)
}

/// Every file under `dir`, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// What the fixture's dry run says about every chain of [`fill_aged`].
fn assert_fixture_dry_run(text: &str) {
    assert!(
        text.contains(&format!(
            "at {} (dry run: nothing is removed)",
            Timestamp::parse(NOW).unwrap()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "chain `acme`: would purge seq 1..=3 (3 records, {} to {}) under policy `soc2`, 365 days: records before {} may go",
            days_before_now(800),
            days_before_now(400),
            days_before_now(365)
        )),
        "{text}"
    );
    assert!(
        text.contains("chain `globex`: kept whole: on legal hold (policy `soc2`, 365 days"),
        "{text}"
    );
    assert!(
        text.contains("chain `initech`: nothing to purge under policy `hipaa`, 2192 days"),
        "{text}"
    );
}

#[test]
fn a_file_store_dry_run_then_purge_then_verify() {
    let store = aged_file_store();
    let before = tree(store.path());
    let config = config_file();

    let out = retention(
        store.path().as_os_str(),
        &["--config".as_ref(), config.as_os_str(), "--dry-run".as_ref()],
    );
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert_fixture_dry_run(&text);
    let globex_first = segment(store.path(), "globex");
    assert!(
        text.contains(&format!(
            "stays: {}: tenant `globex` is on legal hold",
            globex_first.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("DRY RUN: would remove 3 units (3 records in 1 chain); nothing was changed"),
        "{text}"
    );
    assert_eq!(tree(store.path()), before, "a dry run changes nothing");

    let out = retention(
        store.path().as_os_str(),
        &[
            "--config".as_ref(),
            config.as_os_str(),
            "--dry-run".as_ref(),
            "--json".as_ref(),
        ],
    );
    assert_exit(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["plan"]["units"].as_array().unwrap().len(), 3);
    assert_eq!(json["plan"]["blocked"][0]["reason"], "tenant `globex` is on legal hold");
    assert!(json["units_removed"].as_array().unwrap().is_empty());

    // The purge.
    let out = retention(store.path().as_os_str(), &["--config".as_ref(), config.as_os_str()]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("chain `acme`: purged seq 1..=3 (3 records"), "{text}");
    assert_eq!(text.matches("\nremoved: ").count(), 3, "{text}");
    assert!(text.contains("OK: removed 3 units (3 records in 1 chain)"), "{text}");
    assert!(!segment(store.path(), "acme").exists());

    // The rest of the chain verifies from the purge seal, and the purge is on record in it.
    let out = audit([Path::new("verify"), store.path()]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("chain `acme`: 3 records, seq 4..=6, starts mid-chain after prev_hash "),
        "{text}"
    );
    assert!(text.contains("chain `globex`: 2 records, seq 1..=2"), "{text}");
    let out = audit([
        Path::new("export"),
        store.path(),
        Path::new("--tenant"),
        Path::new("acme"),
        Path::new("--format"),
        Path::new("json"),
    ]);
    assert_exit(&out, 0);
    let records: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let purge = records.last().unwrap();
    assert_eq!(purge["action"], "audit_log.purge");
    assert_eq!(purge["actor"]["id"], "retention");
    assert_eq!(purge["changes"]["before"]["through_seq"], 3);
    assert_eq!(purge["context"]["retention_policy"], "soc2");

    // Nothing more to purge.
    let out = retention(store.path().as_os_str(), &["--config".as_ref(), config.as_os_str()]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("OK: nothing to purge"), "{}", stdout(&out));
}

#[test]
fn a_sqlite_store_dry_run_then_purge_then_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    fill_aged(&mut audit::sqlite::SqliteStore::open(&path).unwrap());
    let url = sqlite_url(&path);
    let config = config_file();

    let out = retention(
        url.as_ref(),
        &["--config".as_ref(), config.as_os_str(), "--dry-run".as_ref()],
    );
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert_fixture_dry_run(&text);
    assert!(
        text.contains("stays: rows of chain `globex` seq 1..=1: tenant `globex` is on legal hold"),
        "{text}"
    );
    assert!(
        text.contains("DRY RUN: would remove 1 unit (3 records in 1 chain)"),
        "{text}"
    );

    // A preset instead of the file: one policy for everyone, holds given on the command line.
    let out = retention(
        url.as_ref(),
        &[
            "--preset".as_ref(),
            "soc2".as_ref(),
            "--hold".as_ref(),
            "globex".as_ref(),
            "--dry-run".as_ref(),
        ],
    );
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("chain `initech`: would purge seq 1..=1"), "{text}");
    assert!(text.contains("chain `globex`: kept whole: on legal hold"), "{text}");
    assert!(
        text.contains("DRY RUN: would remove 2 units (4 records in 2 chains)"),
        "{text}"
    );

    let out = audit(["verify", &url]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("chain `acme`: 5 records, seq 1..=5"),
        "{}",
        stdout(&out)
    );

    let out = retention(url.as_ref(), &["--config".as_ref(), config.as_os_str()]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("chain `acme`: purged seq 1..=3"), "{text}");
    assert!(text.contains("removed: rows of chain `acme` seq 1..=3"), "{text}");

    let out = audit(["verify", &url]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("chain `acme`: 3 records, seq 4..=6, starts mid-chain after prev_hash "),
        "{text}"
    );
    assert!(text.contains("OK: 7 records in 3 chains verified"), "{text}");

    // Its export still verifies on its own, with the README's script too.
    let file = dir.path().join("acme.jsonl");
    let out = audit([
        "export".as_ref(),
        url.as_ref(),
        "--tenant".as_ref(),
        "acme".as_ref(),
        "--format".as_ref(),
        "jsonl".as_ref(),
        "-o".as_ref(),
        file.as_os_str(),
    ]);
    assert_exit(&out, 0);
    assert_exit(&audit([Path::new("verify"), &file]), 0);
    let py = python_verify(&file);
    assert!(
        stdout(&py).contains("acme: 3 records through seq 6"),
        "{}{}",
        stdout(&py),
        stderr(&py)
    );
}

#[test]
fn a_postgres_store_purges_whole_months() {
    let Some(db) = TestDb::new() else { return };
    // The server purges only months that are over by its own clock: no time travel here.
    let now = Timestamp::now();
    fill_aged_at(&mut db.store(), now);
    let url = OsStr::new(&db.url);
    let now = now.to_string();
    let retention = |store: &OsStr, args: &[&OsStr]| retention_at(&now, store, args);

    // globex's record 900 days old sits in the oldest month: a hold on it keeps everything.
    let out = retention(
        url,
        &[
            "--preset".as_ref(),
            "soc2".as_ref(),
            "--hold".as_ref(),
            "globex".as_ref(),
            "--dry-run".as_ref(),
        ],
    );
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains(": tenant `globex` is on legal hold"), "{text}");
    assert!(text.contains("DRY RUN: would remove 0 units"), "{text}");

    let out = retention(url, &["--preset".as_ref(), "soc2".as_ref()]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("chain `acme`: purged seq 1..=3"), "{text}");
    assert!(text.contains("chain `globex`: purged seq 1..=1"), "{text}");
    assert!(text.contains("chain `initech`: purged seq 1..=1"), "{text}");
    assert!(text.contains("stays: audit_records_p"), "{text}");

    let out = audit([OsStr::new("verify"), url]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("chain `acme`: 3 records, seq 4..=6, starts mid-chain"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_help_shows_the_fixture_and_bad_configurations_exit_2() {
    let help = audit(["retention", "--help"]);
    assert_exit(&help, 0);
    let fixture = std::fs::read_to_string(config_file()).unwrap();
    assert!(stdout(&help).contains(&fixture), "{}", stdout(&help));

    let store = aged_file_store();
    let dir = tempfile::tempdir().unwrap();

    // The README's shorter example is a valid configuration too.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("```toml\nlegal_holds")
        .expect("the README's retention example")
        + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let short = dir.path().join("short.toml");
    std::fs::write(&short, &readme[start..end]).unwrap();
    let out = retention(
        store.path().as_os_str(),
        &["--config".as_ref(), short.as_os_str(), "--dry-run".as_ref()],
    );
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("chain `globex`: kept whole: on legal hold"),
        "{}",
        stdout(&out)
    );

    let bad = dir.path().join("retention.toml");
    let cases = [
        (
            "[default]\nname = \"soc2\"\nretain_days = \"a year\"\n",
            ":3:15: invalid type",
        ),
        (
            "legal_hold = [\"globex\"]\n[default]\nname = \"x\"\nretain_days = 1\n",
            ":1:1: unknown field `legal_hold`",
        ),
        (
            "[default]\nname = \"x\"\nretain_days = 1\nhot_dayz = 3\n",
            ":4:1: unknown field `hot_dayz`",
        ),
        (
            "[tenants.acme]\nname = \"x\"\nretain_days = 1\n",
            "missing field `default`",
        ),
        ("[default\n", ":1:"),
    ];
    for (text, expected) in cases {
        std::fs::write(&bad, text).unwrap();
        let out = retention(
            store.path().as_os_str(),
            &["--config".as_ref(), bad.as_os_str(), "--dry-run".as_ref()],
        );
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains(&bad.display().to_string()),
            "{text}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(expected), "{text}: {}", stderr(&out));
    }

    let no_policy = retention(store.path().as_os_str(), &["--dry-run".as_ref()]);
    assert_exit(&no_policy, 2);
    let both = retention(
        store.path().as_os_str(),
        &[
            "--preset".as_ref(),
            "soc2".as_ref(),
            "--config".as_ref(),
            bad.as_os_str(),
        ],
    );
    assert_exit(&both, 2);
    let unknown = retention(store.path().as_os_str(), &["--preset".as_ref(), "gdpr".as_ref()]);
    assert_exit(&unknown, 2);
    let missing = retention(
        dir.path().join("none").as_os_str(),
        &["--preset".as_ref(), "soc2".as_ref()],
    );
    assert_exit(&missing, 2);
    for preset in ["soc2", "hipaa", "pci_dss", "seven_years"] {
        let out = retention(
            store.path().as_os_str(),
            &["--preset".as_ref(), preset.as_ref(), "--dry-run".as_ref()],
        );
        assert_exit(&out, 0);
    }
}
