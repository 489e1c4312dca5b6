//! A fresh schema per test on the test server, dropped at the end.
#![allow(dead_code)]

use audit_postgres::PgStore;
use audit_store_tests::Harness;
use postgres::{Client, NoTls};

/// The server the tests use.
pub fn database_url() -> String {
    std::env::var("AUDIT_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A superuser connection, or `None` (with a loud message) when the server is unreachable;
/// under `CI=true` an unreachable server fails the test instead.
pub fn admin() -> Option<Client> {
    let url = database_url();
    match Client::connect(&url, NoTls) {
        Ok(c) => Some(c),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL is unreachable at {url} and CI=true: {e}")
        }
        Err(e) => {
            eprintln!(
                "\n*** SKIPPED: PostgreSQL is unreachable at {url} ({e}).\n*** Set AUDIT_TEST_DATABASE_URL to run the PostgreSQL tests.\n"
            );
            None
        }
    }
}

/// `url` with its user replaced by `user`.
pub fn url_as(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    format!("{scheme}://{user}@{rest}")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A schema of its own, and roles made for the test, dropped on drop.
pub struct TestDb {
    pub url: String,
    pub schema: String,
    pub admin: Client,
    roles: Vec<String>,
}

impl TestDb {
    pub fn new() -> Option<Self> {
        let admin = admin()?;
        Some(TestDb {
            url: database_url(),
            schema: unique("audit_test"),
            admin,
            roles: Vec::new(),
        })
    }

    pub fn store(&self) -> PgStore {
        PgStore::connect(&self.url, &self.schema).expect("connect to the test schema")
    }

    pub fn store_as(&self, role: &str) -> PgStore {
        PgStore::connect(&url_as(&self.url, role), &self.schema).expect("connect as role")
    }

    /// Creates owner, application and retention roles with the documented setup; returns
    /// (owner, app, retention).
    pub fn roles(&mut self) -> (String, String, String) {
        drop(self.store()); // the schema exists, migrated
        let id = uuid::Uuid::now_v7().simple().to_string();
        let (owner, app, retention) = (format!("ao_{id}"), format!("aa_{id}"), format!("ar_{id}"));
        self.roles.extend([app.clone(), retention.clone(), owner.clone()]);
        let sql = audit_postgres::role_setup_sql(&self.schema, &owner, &app, &retention);
        self.admin.batch_execute(&sql).expect("the documented role setup runs");
        (owner, app, retention)
    }

    pub fn client_as(&self, role: &str) -> Client {
        Client::connect(&url_as(&self.url, role), NoTls).expect("connect as role")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema));
        for role in &self.roles {
            let _ = self
                .admin
                .batch_execute(&format!("DROP OWNED BY \"{role}\"; DROP ROLE IF EXISTS \"{role}\""));
        }
    }
}

/// The shared suite's harness: a fresh schema per test.
pub struct PgHarness {
    pub db: TestDb,
}

impl Harness for PgHarness {
    type Writer = PgStore;
    type Source = PgStore;
    type Sink = PgStore;
    type Retention = PgStore;
    const NAME: &'static str = "postgres";

    fn setup() -> Option<Self> {
        Some(PgHarness { db: TestDb::new()? })
    }

    fn writer(&mut self) -> PgStore {
        self.db.store()
    }

    fn source(&mut self) -> PgStore {
        self.db.store()
    }

    fn sink(&mut self) -> PgStore {
        self.db.store()
    }

    fn retention(&mut self) -> PgStore {
        self.db.store()
    }

    fn tamper_delete(&mut self, chain: &str, seq: u64) {
        // A superuser can switch triggers off for the session: what tampering looks like.
        let mut tx = self.db.admin.transaction().unwrap();
        tx.batch_execute("SET LOCAL session_replication_role = replica")
            .unwrap();
        let n = tx
            .execute(
                &format!(
                    "DELETE FROM \"{}\".audit_records WHERE chain = $1 AND seq = $2",
                    self.db.schema
                ),
                &[&chain, &(seq as i64)],
            )
            .unwrap();
        assert_eq!(n, 1);
        tx.commit().unwrap();
    }

    fn try_edits_as_application(&mut self) -> Vec<(&'static str, Result<(), String>)> {
        let (_, app, _) = self.db.roles();
        let mut c = self.db.client_as(&app);
        let s = self.db.schema.clone();
        let mut run = |sql: String| c.batch_execute(&sql).map_err(|e| message(&e));
        let part: String = self
            .db
            .admin
            .query_one(
                &format!(
                    "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent = '\"{s}\".audit_records'::regclass LIMIT 1"
                ),
                &[],
            )
            .unwrap()
            .get(0);
        vec![
            ("UPDATE", run(format!("UPDATE \"{s}\".audit_records SET action = 'x'"))),
            (
                "DELETE",
                run(format!("DELETE FROM \"{s}\".audit_records WHERE seq = 2")),
            ),
            ("TRUNCATE", run(format!("TRUNCATE \"{s}\".audit_records"))),
            ("TRUNCATE partition", run(format!("TRUNCATE \"{s}\".\"{part}\""))),
            ("DROP partition", run(format!("DROP TABLE \"{s}\".\"{part}\""))),
            (
                "UPDATE seals",
                run(format!("UPDATE \"{s}\".audit_seals SET seq = seq + 1")),
            ),
            ("DELETE seals", run(format!("DELETE FROM \"{s}\".audit_seals"))),
            ("UPDATE heads", run(format!("UPDATE \"{s}\".audit_heads SET seq = 0"))),
            (
                "purge as the app",
                run(format!("SELECT \"{s}\".audit_purge_partition('{part}')")),
            ),
            (
                "forged purge seal",
                run(format!(
                    "INSERT INTO \"{s}\".audit_seals (chain, seq, hash, sealed_at, purged) VALUES ('acme', 1, decode(repeat('00', 32), 'hex'), now(), true)"
                )),
            ),
        ]
    }
}

/// The server's message of an error.
pub fn message(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| format!("{} ({})", d.message(), d.code().code()))
}
