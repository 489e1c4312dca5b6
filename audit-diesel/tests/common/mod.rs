//! Shared test support: the model, fresh SQLite files and PostgreSQL schemas, and an audit log
//! in a temporary directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use audit::AuditModel;
use audit_runtime::FileSource;
use audit_runtime::query::{Query, RecordSource};
use audit_runtime::{AuditLayer, FileStore, Record, WriterGuard};
use diesel::prelude::*;
use tracing_subscriber::prelude::*;

/// The test schema (diesel's generated items).
#[allow(missing_docs)]
pub mod schema {
    diesel::table! {
        customers (id) {
            id -> BigInt,
            name -> Text,
            plan -> Text,
            ssn -> Text,
            balance -> BigInt,
            updated_at -> BigInt,
        }
    }
}
pub use schema::customers;

/// The audited model: `ssn` is redacted, `updated_at` is noise.
#[derive(Queryable, Selectable, AuditModel, Debug, Clone, PartialEq)]
#[diesel(table_name = customers)]
#[audit(resource = "customer")]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub plan: String,
    #[audit(redact)]
    pub ssn: String,
    pub balance: i64,
    pub updated_at: i64,
}

#[derive(Insertable, Clone)]
#[diesel(table_name = customers)]
pub struct NewCustomer {
    pub name: String,
    pub plan: String,
    pub ssn: String,
    pub balance: i64,
    pub updated_at: i64,
}

pub const SSN: &str = "078-05-1120";
/// A second SSN, for changes of the redacted field.
pub const OTHER_SSN: &str = "219-09-9999";

/// What a snapshot shows of a redacted value: its keyed fingerprint under this process's key,
/// `"[redacted:hmac-sha256:<32 hex>]"`.
pub fn fingerprint(value: &str) -> serde_json::Value {
    let fp = audit_runtime::fingerprint(value);
    assert_fingerprint(&fp);
    fp
}

/// Asserts that `value` is a redaction fingerprint (and so not a raw value).
pub fn assert_fingerprint(value: &serde_json::Value) {
    let text = value.as_str().unwrap_or_default();
    let hex = text
        .strip_prefix("[redacted:hmac-sha256:")
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a redaction fingerprint: {value}"));
    assert!(
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not a redaction fingerprint: {value}"
    );
    assert!(audit_runtime::redact::is_redacted(value));
}

pub fn new_customer(name: &str, plan: &str) -> NewCustomer {
    NewCustomer {
        name: name.into(),
        plan: plan.into(),
        ssn: SSN.into(),
        balance: 0,
        updated_at: 0,
    }
}

// ---- databases ----

/// A fresh SQLite database file (WAL, busy timeout for the concurrency tests).
pub struct SqliteDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl SqliteDb {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let db = SqliteDb { dir, path };
        let mut conn = db.connect();
        diesel::sql_query(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL, \
             ssn TEXT NOT NULL, balance BIGINT NOT NULL DEFAULT 0, updated_at BIGINT NOT NULL DEFAULT 0)",
        )
        .execute(&mut conn)
        .unwrap();
        db
    }

    pub fn connect(&self) -> SqliteConnection {
        let mut conn = SqliteConnection::establish(self.path.to_str().unwrap()).unwrap();
        diesel::sql_query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query("PRAGMA busy_timeout = 10000")
            .execute(&mut conn)
            .unwrap();
        conn
    }
}

pub fn database_url() -> String {
    std::env::var("AUDIT_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh PostgreSQL schema, dropped at the end. `None` (after a loud message) when the
/// server is unreachable, except under `CI=true`, where that fails the test.
pub struct PgDb {
    pub url: String,
    pub schema: String,
}

impl PgDb {
    pub fn new() -> Option<Self> {
        let url = database_url();
        let mut conn = match PgConnection::establish(&url) {
            Ok(c) => c,
            Err(e) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("PostgreSQL at {url} is unreachable under CI=true: {e}");
                }
                eprintln!("SKIPPED: PostgreSQL at {url} is unreachable ({e}); set AUDIT_TEST_DATABASE_URL");
                return None;
            }
        };
        let schema = format!("audit_diesel_{}", uuid::Uuid::now_v7().simple());
        diesel::sql_query(format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .unwrap();
        let db = PgDb { url, schema };
        let mut conn = db.connect();
        diesel::sql_query(
            "CREATE TABLE customers (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL, \
             ssn TEXT NOT NULL, balance BIGINT NOT NULL DEFAULT 0, updated_at BIGINT NOT NULL DEFAULT 0)",
        )
        .execute(&mut conn)
        .unwrap();
        Some(db)
    }

    pub fn connect(&self) -> PgConnection {
        let mut conn = PgConnection::establish(&self.url).unwrap();
        diesel::sql_query(format!("SET search_path TO {}", self.schema))
            .execute(&mut conn)
            .unwrap();
        conn
    }
}

impl PgDb {
    /// The URL of this database with the schema as every connection's search path (a
    /// connection option tokio-postgres passes to the server), for diesel-async connections
    /// and pools, which open connections themselves.
    pub fn async_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.url, self.schema)
    }

    /// A diesel-async connection whose search path is this schema.
    pub async fn connect_async(&self) -> diesel_async::AsyncPgConnection {
        use diesel_async::AsyncConnection;
        diesel_async::AsyncPgConnection::establish(&self.async_url())
            .await
            .unwrap()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.url) {
            let _ = diesel::sql_query(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)).execute(&mut conn);
        }
    }
}

// ---- the audit log ----

/// An audit log in a temporary directory, installed as this thread's default subscriber.
pub struct Log {
    pub dir: tempfile::TempDir,
    pub guard: WriterGuard,
    pub dispatch: tracing::Dispatch,
    _default: tracing::dispatcher::DefaultGuard,
}

impl Log {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path()).unwrap())
            .build()
            .unwrap();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let default = tracing::dispatcher::set_default(&dispatch);
        Log {
            dir,
            guard,
            dispatch,
            _default: default,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every record, oldest first, after a flush.
    pub fn records(&self) -> Vec<Record> {
        self.guard.flush().unwrap();
        read_records(self.path())
    }

    /// Verifies the chains and checks that no raw SSN (neither [`SSN`] nor [`OTHER_SSN`]) reached
    /// the log.
    pub fn verify(&self) -> audit_runtime::verify::VerifyReport {
        self.guard.flush().unwrap();
        verify_dir(self.path())
    }
}

pub fn read_records(dir: &Path) -> Vec<Record> {
    let mut source = FileSource::open(dir).unwrap();
    source
        .query(&Query::new())
        .unwrap()
        .map(|r| audit_runtime::Record::parse(&r.unwrap().line).unwrap())
        .collect()
}

pub fn verify_dir(dir: &Path) -> audit_runtime::verify::VerifyReport {
    let report = audit_runtime::verify::verify_paths(&[dir], &Default::default()).unwrap();
    let damages: Vec<String> = report.damages().map(|d| d.to_string()).collect();
    assert!(damages.is_empty(), "damage found: {damages:#?}");
    for entry in walk(dir) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        for raw in [SSN, OTHER_SSN] {
            assert!(!text.contains(raw), "a raw SSN reached the log in {}", entry.display());
        }
    }
    report
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn before(r: &Record) -> &serde_json::Value {
    r.changes
        .as_ref()
        .and_then(|c| c.before.as_ref())
        .expect("a before-state")
}

pub fn after(r: &Record) -> &serde_json::Value {
    r.changes
        .as_ref()
        .and_then(|c| c.after.as_ref())
        .expect("an after-state")
}

/// Runs the body once against SQLite and once against PostgreSQL, as two tests.
#[macro_export]
macro_rules! both {
    ($name:ident, |$db:ident, $conn:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() {
                let $db = common::SqliteDb::new();
                #[allow(unused_mut)]
                let mut $conn = $db.connect();
                $body
            }

            #[test]
            fn postgres() {
                let Some($db) = common::PgDb::new() else { return };
                #[allow(unused_mut)]
                let mut $conn = $db.connect();
                $body
            }
        }
    };
}
