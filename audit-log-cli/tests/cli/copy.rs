//! `audit copy` between files, SQLite and PostgreSQL: byte for byte, verified as it goes,
//! resumable and idempotent.

use std::ffi::OsStr;
use std::path::Path;

use crate::common::*;
use crate::pg::TestDb;

/// `audit copy SRC DST` into a store without these chains, then again: the first run copies
/// all 28 records and the seals, the second nothing.
fn copy_twice(src: &OsStr, dst: &OsStr) {
    let out = audit([OsStr::new("copy"), src, dst]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("chain `acme`: copied 20 records, seq 1..=20; destination head at seq 20"),
        "{text}"
    );
    assert!(
        text.contains("chain `globex`: copied 8 records, seq 1..=8; destination head at seq 8"),
        "{text}"
    );
    assert!(!text.contains("seals: 0 added"), "{text}");
    assert!(
        text.contains("OK: copied 28 records in 2 chains, every record verified"),
        "{text}"
    );

    let again = audit([OsStr::new("copy"), src, dst]);
    assert_exit(&again, 0);
    let text = stdout(&again);
    assert!(
        text.contains(
            "chain `acme`: nothing to copy, the destination has 20 records already; destination head at seq 20"
        ),
        "{text}"
    );
    assert!(text.contains("seals: 0 added"), "{text}");
    assert!(text.contains("OK: copied 0 records in 2 chains"), "{text}");
}

/// Every stored line of a store, tenant by tenant, through `audit export --format jsonl`.
fn stored_lines(location: &OsStr) -> Vec<String> {
    let mut lines = Vec::new();
    for tenant in ["acme", "globex"] {
        let out = audit([
            OsStr::new("export"),
            location,
            OsStr::new("--tenant"),
            OsStr::new(tenant),
            OsStr::new("--format"),
            OsStr::new("jsonl"),
        ]);
        assert_exit(&out, 0);
        lines.extend(stdout(&out).lines().map(str::to_owned));
    }
    lines
}

/// `audit verify` passes, with the seals copied along.
fn assert_verifies(location: &OsStr) {
    let out = audit([OsStr::new("verify"), location]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("OK: 28 records in 2 chains verified"), "{text}");
    assert!(text.contains("sealed through seq 20"), "{text}");
    assert!(text.contains("sealed through seq 8"), "{text}");
}

#[test]
fn files_to_sqlite_and_back_byte_for_byte_twice() {
    let store = build_store();
    let original = stored_lines(store.path().as_os_str());
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_url(&dir.path().join("copy.db"));
    let back = dir.path().join("back");

    copy_twice(store.path().as_os_str(), sqlite.as_ref());
    assert_verifies(sqlite.as_ref());
    assert_eq!(stored_lines(sqlite.as_ref()), original);

    copy_twice(sqlite.as_ref(), back.as_os_str());
    assert_verifies(back.as_os_str());
    for chain in ["acme", "globex"] {
        assert_eq!(
            std::fs::read(segment(&back, chain)).unwrap(),
            std::fs::read(segment(store.path(), chain)).unwrap(),
            "chain {chain} came back byte for byte"
        );
    }
}

#[test]
fn files_to_sqlite_to_postgres_and_back_twice() {
    let Some(db) = TestDb::new() else { return };
    let store = build_store();
    let original = stored_lines(store.path().as_os_str());
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_url(&dir.path().join("copy.db"));
    let pg = OsStr::new(&db.url);
    let back = dir.path().join("back");

    copy_twice(store.path().as_os_str(), sqlite.as_ref());
    copy_twice(sqlite.as_ref(), pg);
    assert_verifies(pg);
    assert_eq!(stored_lines(pg), original);
    copy_twice(pg, back.as_os_str());

    for location in [store.path().as_os_str(), sqlite.as_ref(), pg, back.as_os_str()] {
        assert_verifies(location);
    }
    for chain in ["acme", "globex"] {
        assert_eq!(
            std::fs::read(segment(&back, chain)).unwrap(),
            std::fs::read(segment(store.path(), chain)).unwrap(),
            "chain {chain} came back byte for byte"
        );
    }
}

#[test]
fn an_interrupted_copy_resumes_where_the_destination_ends() {
    let store = build_store();
    // What an interrupted copy leaves: acme's first 12 records, no seals yet.
    let partial = copy_store(store.path());
    let acme = segment(partial.path(), "acme");
    write_lines(&acme, &read_lines(&acme)[..12]);
    std::fs::remove_dir_all(partial.path().join("seals")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_url(&dir.path().join("copy.db"));
    let out = audit([
        OsStr::new("copy"),
        partial.path().as_os_str(),
        sqlite.as_ref(),
        OsStr::new("--chain"),
        OsStr::new("acme"),
    ]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("chain `acme`: copied 12 records, seq 1..=12"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("globex"), "{}", stdout(&out));

    let out = audit([
        OsStr::new("copy"),
        store.path().as_os_str(),
        sqlite.as_ref(),
        OsStr::new("--batch-size"),
        OsStr::new("3"),
    ]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(
            "chain `acme`: copied 8 records, seq 13..=20, after the 12 records already there; destination head at seq 20"
        ),
        "{text}"
    );
    assert!(text.contains("chain `globex`: copied 8 records, seq 1..=8"), "{text}");
    assert_verifies(sqlite.as_ref());
}

#[test]
fn a_damaged_source_is_copied_up_to_the_damage_and_a_different_chain_is_refused() {
    let store = build_store();
    let tampered = copy_store(store.path());
    let file = segment(tampered.path(), "acme");
    let mut lines = read_lines(&file);
    lines[6] = lines[6].replace("cust_7", "cust_8");
    write_lines(&file, &lines);

    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_url(&dir.path().join("copy.db"));
    let out = audit([OsStr::new("copy"), tampered.path().as_os_str(), sqlite.as_ref()]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("chain `acme`: copied 6 records, seq 1..=6; destination head at seq 6"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "DAMAGE [edited]: edited record in chain `acme` at seq 7, {} chain acme:7",
            tampered.path().display()
        )),
        "{text}"
    );
    assert!(text.contains("chain `globex`: copied 8 records"), "{text}");
    assert!(text.contains("FAILED: 1 problem in the source"), "{text}");
    // What was copied verifies (seals beyond seq 6 of acme were not copied).
    let out = audit(["verify", &sqlite]);
    assert_exit(&out, 0);

    // Another store's chain under the same key: copying it into this one is refused.
    let other = build_store();
    let dst = tempfile::tempdir().unwrap();
    let dst_url = sqlite_url(&dst.path().join("copy.db"));
    let out = audit([OsStr::new("copy"), store.path().as_os_str(), dst_url.as_ref()]);
    assert_exit(&out, 0);
    let out = audit([OsStr::new("copy"), other.path().as_os_str(), dst_url.as_ref()]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("DIVERGED: chain `acme` differs at seq 20"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn copy_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let dst = dir.path().join("dst.db");
    let out = audit([OsStr::new("copy"), missing.as_os_str(), sqlite_url(&dst).as_ref()]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("no such directory"), "{}", stderr(&out));
    assert!(
        !dst.exists(),
        "no destination is created when the source cannot be read"
    );

    let store = build_store();
    let out = audit([Path::new("copy"), store.path(), store.path()]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("the same store"), "{}", stderr(&out));

    let out = audit(["copy", "only-one"]);
    assert_exit(&out, 2);
    let out = audit(["copy", "a", "b", "--batch-size", "0"]);
    assert_exit(&out, 2);
}
