//! The shared store suite on SQLite, plus SQLite's own append-only details.

use audit_sqlite::SqliteStore;
use audit_store_tests::Harness;
use rusqlite::Connection;

struct SqliteHarness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl SqliteHarness {
    fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.path).expect("open sqlite store")
    }
}

impl Harness for SqliteHarness {
    type Writer = SqliteStore;
    type Source = SqliteStore;
    type Sink = SqliteStore;
    type Retention = SqliteStore;
    const NAME: &'static str = "sqlite";

    fn setup() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.db");
        Some(SqliteHarness { _dir: dir, path })
    }

    fn writer(&mut self) -> SqliteStore {
        self.open()
    }

    fn source(&mut self) -> SqliteStore {
        self.open()
    }

    fn sink(&mut self) -> SqliteStore {
        self.open()
    }

    fn retention(&mut self) -> SqliteStore {
        self.open()
    }

    fn tamper_delete(&mut self, chain: &str, seq: u64) {
        // What someone with the file can do: drop the trigger first.
        let conn = Connection::open(&self.path).unwrap();
        conn.execute_batch("DROP TRIGGER audit_records_no_delete").unwrap();
        let n = conn
            .execute(
                "DELETE FROM audit_records WHERE chain = ?1 AND seq = ?2",
                (chain, seq as i64),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn try_edits_as_application(&mut self) -> Vec<(&'static str, Result<(), String>)> {
        let conn = Connection::open(&self.path).unwrap();
        let run = |sql: &str| conn.execute_batch(sql).map_err(|e| e.to_string());
        vec![
            ("UPDATE", run("UPDATE audit_records SET action = 'x' WHERE seq = 1")),
            ("DELETE", run("DELETE FROM audit_records WHERE seq = 2")),
            ("DELETE all (truncate)", run("DELETE FROM audit_records")),
            ("UPDATE seal", run("UPDATE audit_seals SET seq = seq + 1")),
            ("DELETE seal", run("DELETE FROM audit_seals")),
            // A permit alone, without a purge seal covering the rows, opens nothing.
            (
                "DELETE with a permit but no purge seal",
                run(
                    "BEGIN; INSERT INTO audit_purge_permit VALUES ('acme', 100); DELETE FROM audit_records WHERE chain = 'acme'; COMMIT;",
                ),
            ),
        ]
    }
}

audit_store_tests::store_suite!(SqliteHarness);

#[test]
fn migrations_are_versioned_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    drop(SqliteStore::open(&path).unwrap());
    let store = SqliteStore::open(&path).unwrap();
    let versions: Vec<i64> = store
        .connection()
        .prepare("SELECT version FROM audit_schema_version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, [audit_sqlite::SCHEMA_VERSION]);
    assert!(SqliteStore::open_url(&format!("sqlite://{}", path.display())).is_ok());
}

#[test]
fn tenant_query_uses_the_chain_time_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("a.db")).unwrap();
    let plan: Vec<String> = store
        .connection()
        .prepare(
            "EXPLAIN QUERY PLAN SELECT chain, seq, ts, prev_hash, hash, line FROM audit_records
             WHERE chain = ?1 AND ts >= ?2 AND ts < ?3 AND (ts, seq) > (?4, ?5) ORDER BY ts, seq LIMIT 100",
        )
        .unwrap()
        .query_map(("acme", 0, 1, 0, 0), |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let text = plan.join("\n");
    assert!(text.contains("audit_records_chain_ts"), "{text}");
    assert!(!text.contains("TEMP B-TREE"), "no sort: {text}");
}
