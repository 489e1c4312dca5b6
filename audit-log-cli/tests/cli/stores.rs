//! `audit verify` and `audit export` on SQLite and PostgreSQL stores written by the real
//! layer and writer (`AuditLayer::builder(store)` with the SQL store as the `Store`).

use std::ffi::OsStr;
use std::path::Path;

use serde_json::Value;

use crate::common::*;
use crate::pg::TestDb;

/// What verify and export must do on any store filled by [`fill`], named by `url`.
fn check_verify_and_export(url: &str) {
    let dir = tempfile::tempdir().unwrap();

    // A tenant's whole chain, exported as JSONL: the stored bytes.
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
    assert!(stderr(&out).contains("exported 20 records from "), "{}", stderr(&out));
    let acme = read_lines(&file);
    assert_eq!(acme.len() as u64, ACME);
    let head = hash_of(&acme[19]);

    // The store itself verifies, with its seals.
    let out = audit(["verify", url]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "chain `acme`: 20 records, seq 1..=20, head {head}, sealed through seq 20"
        )),
        "{text}"
    );
    assert!(text.contains("chain `globex`: 8 records, seq 1..=8, head "), "{text}");
    assert!(text.contains("sealed through seq 8"), "{text}");
    assert!(text.contains("OK: 28 records in 2 chains verified"), "{text}");
    let (code, report) = verify_json(&[url]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(chain(&report, "acme")["head"], head);
    assert_eq!(chain(&report, "acme")["sealed_through"], ACME);

    // The export verifies on its own, with `audit verify` and with the README's script.
    let out = audit([Path::new("verify"), Path::new("--require-genesis"), &file]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(&format!("chain `acme`: 20 records, seq 1..=20, head {head}")),
        "{}",
        stdout(&out)
    );
    let py = python_verify(&file);
    assert!(py.status.success(), "{}{}", stdout(&py), stderr(&py));
    assert!(
        stdout(&py).contains(&format!("acme: 20 records through seq 20, head {head}")),
        "{}",
        stdout(&py)
    );

    // A time range is a segment that starts mid-chain (`--to` is exclusive).
    let range = dir.path().join("range.jsonl");
    let (from, to) = (acme_time(5).to_string(), acme_time(13).to_string());
    let out = audit([
        "export".as_ref(),
        url.as_ref(),
        "--tenant".as_ref(),
        "acme".as_ref(),
        "--from".as_ref(),
        from.as_ref(),
        "--to".as_ref(),
        to.as_ref(),
        "--format".as_ref(),
        "jsonl".as_ref(),
        "--output".as_ref(),
        range.as_os_str(),
    ]);
    assert_exit(&out, 0);
    assert_eq!(read_lines(&range), acme[4..12]);
    let out = audit([Path::new("verify"), &range]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(&format!(
            "chain `acme`: 8 records, seq 5..=12, starts mid-chain after prev_hash {}, head {}",
            hash_of(&acme[3]),
            hash_of(&acme[11])
        )),
        "{}",
        stdout(&out)
    );
    let py = python_verify(&range);
    assert!(
        stdout(&py).contains("acme: 8 records through seq 12"),
        "{}{}",
        stdout(&py),
        stderr(&py)
    );

    // CSV neutralises formulas; JSON is an array of every record.
    let out = audit(["export", url, "--tenant", "acme", "--format", "csv"]);
    assert_exit(&out, 0);
    let mut reader = csv::Reader::from_reader(&out.stdout[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len() as u64, ACME);
    let resource_id = header.iter().position(|h| h == "resource_id").unwrap();
    assert_eq!(&rows[12][resource_id], format!("'{FORMULA}"));
    let out = audit(["export", url, "--format", "json"]);
    assert_exit(&out, 0);
    let records: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records.len() as u64, ACME + GLOBEX);

    // Filters by action and actor run in the store.
    let out = audit([
        "export",
        url,
        "--tenant",
        "acme",
        "--action",
        "billing.*",
        "--actor",
        "usr_2",
        "--format",
        "jsonl",
    ]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("not a complete chain segment"),
        "{}",
        stderr(&out)
    );
    let seqs: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [10, 20]);
}

/// After an edit of acme's seq 7 in the store, verify names it.
fn check_edit_is_found(url: &str) {
    let out = audit(["verify", url]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("DAMAGE [edited]: edited record in chain `acme` at seq 7, "),
        "{text}"
    );
    assert!(text.contains("chain `globex`: 8 records"), "{text}");
    assert!(text.contains("FAILED: 1 problem found"), "{text}");
    let (code, report) = verify_json(&[url]);
    assert_eq!(code, 1);
    assert_eq!(report["ok"], false);
    assert_eq!(chain(&report, "acme")["damage"]["seq"], 7);
}

#[test]
fn a_sqlite_store_verifies_and_exports_like_files() {
    let (dir, url) = build_sqlite();
    check_verify_and_export(&url);

    // Tampering by someone who can write the file: drop the trigger, edit a record.
    let db = audit::sqlite::SqliteStore::open(dir.path().join("audit.db")).unwrap();
    db.connection()
        .execute_batch(
            "DROP TRIGGER audit_records_no_update;
             UPDATE audit_records SET line = replace(line, 'cust_7', 'cust_8') WHERE chain = 'acme' AND seq = 7;",
        )
        .unwrap();
    check_edit_is_found(&url);

    // Deleting a whole chain is a truncation: its seals remember it.
    db.connection()
        .execute_batch(
            "DROP TRIGGER audit_records_no_delete;
             DELETE FROM audit_records WHERE chain = 'globex';",
        )
        .unwrap();
    let (code, report) = verify_json(&[&url]);
    assert_eq!(code, 1, "{report:#}");
    let globex = &chain(&report, "globex")["damage"];
    assert_eq!(globex["kind"], "truncated", "{report:#}");
    assert_eq!(globex["seq"], 1);

    // So is deleting every record of the store.
    db.connection().execute_batch("DELETE FROM audit_records").unwrap();
    let (code, report) = verify_json(&[&url]);
    assert_eq!(code, 1, "{report:#}");
    for name in ["acme", "globex"] {
        assert_eq!(chain(&report, name)["damage"]["kind"], "truncated", "{report:#}");
    }
}

#[test]
fn a_postgres_store_verifies_and_exports_like_files() {
    let Some(mut db) = TestDb::new() else { return };
    fill(db.store());
    check_verify_and_export(&db.url);

    let n = db.tamper(
        "UPDATE {s}.audit_records SET line = replace(line, 'cust_7', 'cust_8') WHERE chain = 'acme' AND seq = 7",
    );
    assert_eq!(n, 1);
    check_edit_is_found(&db.url);
}

#[test]
fn several_stores_verify_in_one_run() {
    let files = build_store();
    let (_dir, url) = build_sqlite();
    let locations = [OsStr::new(&url), files.path().as_os_str()];
    let out = audit([OsStr::new("verify")].iter().chain(&locations));
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains(&format!("store {}:\n", files.path().display())), "{text}");
    assert!(text.contains(&format!("store {url}:\n")), "{text}");
    assert!(text.contains("OK: 56 records in 4 chains verified"), "{text}");

    let (code, report) = verify_json(&locations);
    assert_eq!(code, 0);
    assert_eq!(report["ok"], true);
    let stores = report["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 2);
    assert!(
        stores
            .iter()
            .all(|s| s["ok"] == true && s["chains"].as_array().unwrap().len() == 2)
    );
    assert!(stores.iter().any(|s| s["store"] == url.as_str()), "{report:#}");
}

#[test]
fn bad_store_locations_exit_2_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let url = sqlite_url(&missing);
    let out = audit(["verify", &url]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no such SQLite database file"),
        "{}",
        stderr(&out)
    );
    let out = audit(["export", &url, "--format", "jsonl"]);
    assert_exit(&out, 2);
    assert!(!missing.exists(), "reading created the database");

    let out = audit(["verify", "mysql://db/app"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("unknown store scheme `mysql`"),
        "{}",
        stderr(&out)
    );

    // An empty store has nothing to verify.
    let empty = dir.path().join("empty.db");
    drop(audit::sqlite::SqliteStore::open(&empty).unwrap());
    let out = audit(["verify", &sqlite_url(&empty)]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("nothing to verify"), "{}", stderr(&out));

    // A store URL is exported alone.
    let store = build_store();
    let out = audit([
        "export".as_ref(),
        sqlite_url(&empty).as_ref(),
        store.path().as_os_str(),
        "--format".as_ref(),
        "jsonl".as_ref(),
    ]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("exported on its own"), "{}", stderr(&out));
}

#[test]
fn a_postgres_schema_that_is_not_a_store_is_an_error_and_stays_absent() {
    let Some(mut db) = TestDb::new() else { return };
    let out = audit(["verify", &db.url]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no audit store in this schema"),
        "{}",
        stderr(&out)
    );
    let out = audit(["export", &db.url, "--format", "csv"]);
    assert_exit(&out, 2);
    assert!(!db.schema_exists(), "reading created the schema");

    // A server that does not answer is an I/O error too.
    let out = audit([
        "verify",
        "postgres://nobody@127.0.0.1:1/none?schema=audit&connect_timeout=2",
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("postgres://nobody@127.0.0.1:1/none"),
        "{}",
        stderr(&out)
    );
}
