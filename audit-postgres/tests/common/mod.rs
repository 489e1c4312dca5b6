//! A fresh schema per test on the test server, set up with the documented roles, dropped
//! at the end with them.
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

/// `url` with `options=-c role=ROLE`: a session that acts as `role` (the way a DBA who is a
/// member of the owner role runs the migrations).
pub fn url_with_role(url: &str, role: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20role%3D{role}")
}

/// The roles of the documented setup for a schema.
pub struct Roles {
    pub owner: String,
    pub app: String,
    pub reader: String,
    pub retention: String,
}

impl Roles {
    pub fn of(schema: &str) -> Self {
        Roles {
            owner: format!("{schema}_owner"),
            app: format!("{schema}_app"),
            reader: format!("{schema}_reader"),
            retention: format!("{schema}_retention"),
        }
    }

    fn all(&self) -> [&str; 4] {
        [&self.app, &self.reader, &self.retention, &self.owner]
    }
}

/// A schema of its own set up as the documented role setup says (`role_setup_sql`), with
/// its roles; schema and roles are dropped on drop. [`TestDb::store`] opens it as the owner.
pub struct TestDb {
    pub url: String,
    pub schema: String,
    pub admin: Client,
    roles: Roles,
}

impl TestDb {
    pub fn new() -> Option<Self> {
        let admin = admin()?;
        let schema = unique("audit_test");
        let mut db = TestDb {
            url: database_url(),
            roles: Roles::of(&schema),
            schema,
            admin,
        };
        // Dropped (with whatever the setup made) if the setup fails.
        db.admin
            .batch_execute(&audit_postgres::role_setup_sql(&db.schema))
            .expect("the documented role setup runs");
        Some(db)
    }

    /// The store, opened (and migrated) as the owner.
    pub fn store(&self) -> PgStore {
        PgStore::connect(&url_with_role(&self.url, &self.roles.owner), &self.schema)
            .expect("connect to the test schema as its owner")
    }

    pub fn store_as(&self, role: &str) -> PgStore {
        PgStore::connect(&url_as(&self.url, role), &self.schema).expect("connect as role")
    }

    /// The documented roles, with the tables created (owner, app, retention).
    pub fn roles(&mut self) -> (String, String, String) {
        drop(self.store());
        (
            self.roles.owner.clone(),
            self.roles.app.clone(),
            self.roles.retention.clone(),
        )
    }

    /// The owner role (without creating the tables).
    pub fn owner(&self) -> String {
        self.roles.owner.clone()
    }

    pub fn client_as(&self, role: &str) -> Client {
        Client::connect(&url_as(&self.url, role), NoTls).expect("connect as role")
    }
}

/// Drops `schema` and the documented roles of it.
pub fn drop_schema_and_roles(admin: &mut Client, schema: &str) {
    let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    for role in Roles::of(schema).all() {
        let _ = admin.batch_execute(&format!("DROP OWNED BY \"{role}\"; DROP ROLE IF EXISTS \"{role}\""));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_schema_and_roles(&mut self.admin, &self.schema);
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
