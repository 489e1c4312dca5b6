//! A fresh PostgreSQL schema per test on the test server, dropped at the end: the approach of
//! `audit-postgres/tests/common`. The server is `AUDIT_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); when it is unreachable the test is skipped
//! loudly, except under `CI=true`, where it fails.

use std::io::Write;

use audit::postgres::PgStore;
use postgres::{Client, NoTls};

/// The server the tests use.
pub fn database_url() -> String {
    std::env::var("AUDIT_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A superuser connection, or `None` (with a loud message) when the server is unreachable;
/// under `CI=true` an unreachable server fails the test instead.
fn admin() -> Option<Client> {
    let url = database_url();
    match Client::connect(&url, NoTls) {
        Ok(c) => Some(c),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL is unreachable at {url} and CI=true: {e}")
        }
        Err(e) => {
            // Straight to the process's stderr, past the test harness's capture: a skip must
            // be seen even when the test passes.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: PostgreSQL is unreachable at {url} ({e}).\n*** Set AUDIT_TEST_DATABASE_URL to run the PostgreSQL tests of the audit command.\n"
            );
            None
        }
    }
}

/// A schema of the test's own (a random name, not created until a store is opened in it),
/// dropped on drop.
pub struct TestDb {
    /// The store URL: the server's URL with `?schema=`.
    pub url: String,
    /// The schema.
    pub schema: String,
    /// A superuser connection, for tampering and clean-up.
    pub admin: Client,
}

impl TestDb {
    /// A fresh schema name on the test server, or `None` to skip.
    pub fn new() -> Option<Self> {
        let admin = admin()?;
        let schema = format!("audit_cli_{}", uuid::Uuid::now_v7().simple());
        let base = database_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(TestDb {
            url: format!("{base}{sep}schema={schema}"),
            schema,
            admin,
        })
    }

    /// Opens (creating) the store in the schema.
    pub fn store(&self) -> PgStore {
        PgStore::connect_url(&self.url).expect("connect to the test schema")
    }

    /// Whether the schema exists.
    pub fn schema_exists(&mut self) -> bool {
        self.admin
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&self.schema],
            )
            .unwrap()
            .get(0)
    }

    /// Runs `sql` (with `{s}` standing for the quoted schema) with the append-only triggers
    /// switched off for the transaction: what tampering by a superuser looks like.
    pub fn tamper(&mut self, sql: &str) -> u64 {
        let mut tx = self.admin.transaction().unwrap();
        tx.batch_execute("SET LOCAL session_replication_role = replica")
            .unwrap();
        let n = tx
            .execute(&sql.replace("{s}", &format!("\"{}\"", self.schema)), &[])
            .unwrap();
        tx.commit().unwrap();
        n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema));
    }
}
