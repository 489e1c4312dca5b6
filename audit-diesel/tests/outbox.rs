//! The transactional outbox on SQLite and PostgreSQL: events committed with the change, none for
//! rollbacks, and exactly-once delivery by the relay, including after SIGKILL between commit
//! and relay and between delivery and deletion.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_diesel::outbox::audit_outbox;
use audit_diesel::{AuditConnection, AuditedExt, Error, Relay};
use audit_runtime::FileSource;
use audit_runtime::{Actor, AuditScope, AuthMethod};
use common::{Customer, Log, before, customers, new_customer};
use diesel::connection::{InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use serde_json::json;

both!(events_are_committed_with_the_change_and_relayed_once, |db, conn| {
    let log = Log::new();
    conn.create_outbox().unwrap();
    let scope = AuditScope::new()
        .actor(Actor::user("usr_9", AuthMethod::ApiKey))
        .tenant("globex")
        .context("ip", "192.0.2.1");
    scope.in_scope(|| {
        let mut db = conn.audited().outbox(true);
        db.transaction(|tx| -> Result<(), Error> {
            let ada: Customer = tx.insert(customers::table, new_customer("Ada", "free"))?;
            tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))?;
            let _ = tx.transaction(|tx| -> Result<(), Error> {
                tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("gone"))?;
                Err(Error::NotFound {
                    operation: "test",
                    table: "savepoint".into(),
                })
            });
            Ok(())
        })
        .unwrap();
        let rolled_back: Result<(), Error> = db.transaction(|tx| {
            let _: Customer = tx.insert(customers::table, new_customer("Bob", "free"))?;
            Err(Error::NotFound {
                operation: "test",
                table: "rollback".into(),
            })
        });
        assert!(rolled_back.is_err());
        // Outside a transaction, an outboxed operation runs in its own.
        let _: Customer = db.insert(customers::table, new_customer("Cy", "free")).unwrap();
    });
    let pending: i64 = audit_outbox::table.count().get_result(&mut conn).unwrap();
    assert_eq!(pending, 3);
    assert!(log.records().is_empty(), "nothing reaches the log before the relay");

    let mut source = FileSource::open(log.path()).unwrap();
    let mut relay = Relay::new().batch_size(2);
    assert_eq!(relay.drain(&mut conn, &log.guard, &mut source).unwrap(), 3);
    assert_eq!(relay.drain(&mut conn, &log.guard, &mut source).unwrap(), 0);
    let pending: i64 = audit_outbox::table.count().get_result(&mut conn).unwrap();
    assert_eq!(pending, 0);

    let records = log.records();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["customer.create", "customer.update", "customer.create"]);
    for r in &records {
        assert_eq!(r.actor.id, "usr_9");
        assert_eq!(r.tenant.as_deref(), Some("globex"));
        assert_eq!(r.context.as_ref().unwrap().ip.as_deref(), Some("192.0.2.1"));
    }
    assert_eq!(before(&records[1])["plan"], "free");
    assert_eq!(common::after(&records[1])["plan"], "pro");
    assert_eq!(common::after(&records[1])["ssn"], common::fingerprint(common::SSN));
    assert_eq!(records[1].changes.as_ref().unwrap().fields, ["plan"]);
    log.verify();
});

both!(a_relay_after_a_crash_skips_what_was_delivered, |db, conn| {
    let log = Log::new();
    conn.create_outbox().unwrap();
    for i in 0..4 {
        let _: Customer = conn
            .audited()
            .outbox(true)
            .insert(customers::table, new_customer(&format!("c{i}"), "free"))
            .unwrap();
    }
    let rows: Vec<(String, String)> = audit_outbox::table
        .select((audit_outbox::event_id, audit_outbox::event))
        .load(&mut conn)
        .unwrap();
    let mut source = FileSource::open(log.path()).unwrap();
    assert_eq!(Relay::new().drain(&mut conn, &log.guard, &mut source).unwrap(), 4);
    // As if the relay had died after the flush and before the deletion: the rows are back.
    for (event_id, event) in &rows[1..] {
        diesel::insert_into(audit_outbox::table)
            .values((audit_outbox::event_id.eq(event_id), audit_outbox::event.eq(event)))
            .execute(&mut conn)
            .unwrap();
    }
    assert_eq!(Relay::new().drain(&mut conn, &log.guard, &mut source).unwrap(), 3);
    let records = log.records();
    assert_eq!(records.len(), 4, "no event delivered twice");
    log.verify();
});

// ---- PostgreSQL: the outboxed update is one statement ----

/// The SQL of every statement the connection runs from now on.
fn record_statements(conn: &mut PgConnection) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            sink.lock().unwrap().push(query.to_string());
        }
    });
    seen
}

fn relay_all<C: AuditConnection>(conn: &mut C, log: &Log) -> Vec<audit_runtime::Record> {
    let mut source = FileSource::open(log.path()).unwrap();
    Relay::new().drain(conn, &log.guard, &mut source).unwrap();
    log.records()
}

#[test]
fn an_outboxed_update_is_one_statement_on_postgres() {
    let Some(db) = common::PgDb::new() else { return };
    let mut conn = db.connect();
    conn.create_outbox().unwrap();
    let log = Log::new();
    let ada: Customer = conn
        .audited()
        .insert(customers::table, new_customer("Ada", "free"))
        .unwrap();
    let scope = AuditScope::new()
        .actor(Actor::user("usr_7", AuthMethod::Sso))
        .tenant("acme")
        .context("request_id", "req_7");
    let update = |conn: &mut PgConnection, plan: &str| {
        scope.in_scope(|| {
            conn.audited()
                .outbox(true)
                .ignore(&["updated_at"])
                .update::<Customer, _, _>(
                    customers::table.find(ada.id),
                    (customers::plan.eq(plan.to_owned()), customers::updated_at.eq(9)),
                )
                .unwrap()
        })
    };
    update(&mut conn, "warm-up"); // the first one proves the plan for the model
    let seen = record_statements(&mut conn);
    let change = update(&mut conn, "pro");
    assert_eq!(change.changed, ["plan"]);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "one statement, no BEGIN/COMMIT: {seen:#?}");
        assert!(seen[0].contains("INSERT INTO \"audit_outbox\""), "{}", seen[0]);
    }
    // Inside a transaction too, and a rolled-back savepoint takes its outbox row with it.
    seen.lock().unwrap().clear();
    conn.audited()
        .outbox(true)
        .transaction(|tx| -> Result<(), Error> {
            let _ = tx.transaction(|tx| -> Result<(), Error> {
                tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("gone"))?;
                Err(Error::NotFound {
                    operation: "test",
                    table: "savepoint".into(),
                })
            });
            tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::name.eq("Ada L."))?;
            Ok(())
        })
        .unwrap();
    let statements = seen.lock().unwrap().clone();
    assert!(
        !statements.iter().any(|s| s.starts_with("INSERT")),
        "no separate outbox insert: {statements:#?}"
    );
    // Not found, not unique: nothing changes, no outbox row.
    let err = conn
        .audited()
        .outbox(true)
        .update::<Customer, _, _>(customers::table.find(-1), customers::plan.eq("x"))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let _: Customer = conn
        .audited()
        .insert(customers::table, new_customer("Bob", "free"))
        .unwrap();
    let err = conn
        .audited()
        .outbox(true)
        .update::<Customer, _, _>(customers::table, customers::plan.eq("x"))
        .unwrap_err();
    assert!(matches!(err, Error::NotUnique { .. }), "{err}");

    // The outbox never held the SSN, and the relayed events are the model's.
    let events: Vec<String> = audit_outbox::table.select(audit_outbox::event).load(&mut conn).unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| !e.contains(common::SSN)), "{events:#?}");
    let records = relay_all(&mut conn, &log);
    let updates: Vec<_> = records.iter().filter(|r| r.action == "customer.update").collect();
    assert_eq!(updates.len(), 3, "{records:#?}");
    let pro = updates[1];
    assert_eq!(
        before(pro),
        &json!({"id": ada.id, "name": "Ada", "plan": "warm-up", "ssn": common::fingerprint(common::SSN), "balance": 0, "updated_at": 9})
    );
    assert_eq!(common::after(pro)["plan"], "pro");
    assert_eq!(pro.changes.as_ref().unwrap().fields, ["plan"]);
    assert_eq!(pro.resource.as_ref().unwrap().id, ada.id.to_string());
    assert_eq!(pro.actor.id, "usr_7");
    assert_eq!(pro.tenant.as_deref(), Some("acme"));
    assert_eq!(pro.context.as_ref().unwrap().request_id.as_deref(), Some("req_7"));
    assert_eq!(updates[2].changes.as_ref().unwrap().fields, ["name"]);
    assert_eq!(common::after(updates[2])["name"], "Ada L.");
    log.verify();
}

/// Generated by diesel's `table!`.
#[allow(missing_docs)]
mod scored {
    diesel::table! {
        scored (id) {
            id -> BigInt,
            score -> Double,
            note -> Text,
        }
    }
}

/// A model with a column type whose JSON the probe does not cover (`double precision`):
/// its outboxed updates take the general path.
#[derive(Queryable, Selectable, audit::AuditModel, Debug)]
#[diesel(table_name = scored::scored)]
#[audit(resource = "scored")]
struct Scored {
    id: i64,
    score: f64,
    #[audit(rename = "label")]
    note: String,
}

#[test]
fn a_model_the_database_cannot_snapshot_takes_the_general_path() {
    let Some(db) = common::PgDb::new() else { return };
    let mut conn = db.connect();
    conn.create_outbox().unwrap();
    conn.batch_execute(
        "CREATE TABLE scored (id BIGINT PRIMARY KEY, score DOUBLE PRECISION NOT NULL, note TEXT NOT NULL); \
         INSERT INTO scored VALUES (1, 1.0, 'a')",
    )
    .unwrap();
    let log = Log::new();
    let seen = record_statements(&mut conn);
    for score in [1.5, 2.0] {
        let change = conn
            .audited()
            .outbox(true)
            .update::<Scored, _, _>(scored::scored::table.find(1), scored::scored::score.eq(score))
            .unwrap();
        assert_eq!(change.changed, ["score"]);
    }
    let statements = seen.lock().unwrap().clone();
    assert!(statements.iter().any(|s| s == "BEGIN"), "{statements:#?}");
    let records = relay_all(&mut conn, &log);
    assert_eq!(records.len(), 2);
    assert_eq!(before(&records[1]), &json!({"id": 1, "score": 1.5, "label": "a"}));
    assert_eq!(
        common::after(&records[1]),
        &json!({"id": 1, "score": 2.0, "label": "a"})
    );
    assert_eq!(records[1].changes.as_ref().unwrap().fields, ["score"]);
    log.verify();
}

/// Generated by diesel's `table!`.
#[allow(missing_docs)]
mod secrets {
    diesel::table! {
        secrets (id) {
            id -> BigInt,
            label -> Text,
            secret_text -> Text,
            secret_varchar -> Varchar,
            secret_int -> Integer,
            secret_small -> SmallInt,
            secret_big -> BigInt,
            secret_bool -> Bool,
            secret_null -> Nullable<Text>,
        }
    }
}
use secrets::secrets as secrets_t;

/// A redacted field of every column type the database fingerprints itself.
#[derive(Queryable, Selectable, audit::AuditModel, Debug, Clone, PartialEq)]
#[diesel(table_name = secrets_t)]
#[audit(resource = "secret")]
struct Secret {
    id: i64,
    label: String,
    #[audit(redact)]
    secret_text: String,
    #[audit(redact)]
    secret_varchar: String,
    #[audit(redact)]
    secret_int: i32,
    #[audit(redact)]
    secret_small: i16,
    #[audit(redact)]
    secret_big: i64,
    #[audit(redact)]
    secret_bool: bool,
    #[audit(redact)]
    secret_null: Option<String>,
}

/// Text with everything whose JSON escaping could differ between PostgreSQL and serde_json:
/// quotes, backslashes, every control character, DEL, non-ASCII (two- to four-byte UTF-8,
/// U+2028, a BOM), and a marker that must never reach a record.
fn tricky_text(marker: &str) -> String {
    let mut text = format!("{marker} \"quoted\" back\\slash \\u0041 /slash/ 'single' ");
    text.extend((1u8..0x20).map(char::from));
    text.push_str("\u{7f}\u{80} é 中文 😀 \u{2028}\u{2029}\u{feff}\u{ffff} end");
    text
}

#[test]
fn postgres_computes_the_same_redaction_fingerprints_as_the_model() {
    let Some(db) = common::PgDb::new() else { return };
    let mut conn = db.connect();
    conn.create_outbox().unwrap();
    conn.batch_execute(
        "CREATE TABLE secrets (id BIGINT PRIMARY KEY, label TEXT NOT NULL, secret_text TEXT NOT NULL, \
         secret_varchar VARCHAR(2000) NOT NULL, secret_int INTEGER NOT NULL, secret_small SMALLINT NOT NULL, \
         secret_big BIGINT NOT NULL, secret_bool BOOLEAN NOT NULL, secret_null TEXT); \
         INSERT INTO secrets VALUES (1, 'start', 'a', 'b', 0, 0, 0, false, NULL)",
    )
    .unwrap();
    let log = Log::new();
    use secrets_t::dsl::*;
    type Values = (String, String, String, i32, i16, i64, bool, Option<String>);
    let rows: [Values; 4] = [
        // The warm-up, which proves the plan for the model.
        (
            "warm-up".into(),
            "t0".into(),
            "v0".into(),
            1,
            1,
            1,
            true,
            Some("n0".into()),
        ),
        (
            "tricky".into(),
            tricky_text("s3cr3t-text-1"),
            tricky_text("s3cr3t-varchar-1"),
            i32::MIN,
            i16::MAX,
            i64::MIN,
            false,
            Some(tricky_text("s3cr3t-null-1")),
        ),
        (
            "extremes".into(),
            String::new(),
            "\\\\\"\"".into(),
            i32::MAX,
            i16::MIN,
            i64::MAX,
            true,
            None,
        ),
        // Only one redacted field changes.
        (
            "extremes".into(),
            String::new(),
            "\\\\\"\"".into(),
            -7,
            i16::MIN,
            i64::MAX,
            true,
            None,
        ),
    ];
    let mut seen = None;
    for (i, v) in rows.iter().enumerate() {
        if i == 1 {
            seen = Some(record_statements(&mut conn));
        }
        let change: audit_diesel::Change<Secret> = conn
            .audited()
            .outbox(true)
            .update(
                secrets_t::table.find(1),
                (
                    label.eq(&v.0),
                    secret_text.eq(&v.1),
                    secret_varchar.eq(&v.2),
                    secret_int.eq(v.3),
                    secret_small.eq(v.4),
                    secret_big.eq(v.5),
                    secret_bool.eq(v.6),
                    secret_null.eq(&v.7),
                ),
            )
            .expect("the database's event agrees with the model's");
        if i == 3 {
            assert_eq!(change.changed, ["secret_int"]);
        }
    }
    let statements = seen.unwrap().lock().unwrap().clone();
    assert_eq!(
        statements.len(),
        3,
        "one statement per update, the database fingerprinting: {statements:#?}"
    );
    assert!(statements.iter().all(|s| s.contains("sha256(")), "{statements:#?}");

    let outbox: Vec<String> = audit_outbox::table.select(audit_outbox::event).load(&mut conn).unwrap();
    let records = relay_all(&mut conn, &log);
    assert_eq!(records.len(), 4);
    for (i, (r, v)) in records.iter().zip(&rows).enumerate() {
        let after = common::after(r);
        let expected = [
            ("secret_text", audit_runtime::fingerprint(&v.1)),
            ("secret_varchar", audit_runtime::fingerprint(&v.2)),
            ("secret_int", audit_runtime::fingerprint(&v.3)),
            ("secret_small", audit_runtime::fingerprint(&v.4)),
            ("secret_big", audit_runtime::fingerprint(&v.5)),
            ("secret_bool", audit_runtime::fingerprint(&v.6)),
            ("secret_null", audit_runtime::fingerprint(&v.7)),
        ];
        for (field, fp) in expected {
            common::assert_fingerprint(&after[field]);
            assert_eq!(after[field], fp, "record {i}: {field}");
        }
        assert_eq!(after["label"], v.0.as_str());
    }
    // Changed redacted fields are named (the record lists them sorted); unchanged ones are not.
    let fields = |i: usize| records[i].changes.as_ref().unwrap().fields.clone();
    assert_eq!(
        fields(2),
        [
            "label",
            "secret_big",
            "secret_bool",
            "secret_int",
            "secret_null",
            "secret_small",
            "secret_text",
            "secret_varchar"
        ]
    );
    assert_eq!(fields(3), ["secret_int"]);
    assert_ne!(
        common::before(&records[3])["secret_int"],
        common::after(&records[3])["secret_int"]
    );
    // No raw value reached the outbox or the log.
    for event in &outbox {
        assert!(!event.contains("s3cr3t"), "{event}");
    }
    for r in &records {
        assert!(!serde_json::to_string(&r.changes).unwrap().contains("s3cr3t"));
    }
    log.verify();
}

// ---- SIGKILL between commit and relay, and between delivery and deletion ----

const CHILD_ENV: &str = "AUDIT_DIESEL_OUTBOX_CHILD";

enum Target {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, schema: String },
}

/// Runs in the child process only: `backend|db|log dir|mode`.
#[test]
#[ignore = "child process of the SIGKILL outbox tests"]
fn outbox_crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let (backend, db, log_dir, mode) = (parts[0], parts[1], parts[2], parts[3]);
    match backend {
        "sqlite" => {
            let mut conn = SqliteConnection::establish(db).unwrap();
            diesel::sql_query("PRAGMA busy_timeout = 10000")
                .execute(&mut conn)
                .unwrap();
            child_sqlite(&mut conn, log_dir, mode);
        }
        _ => {
            let mut conn = PgConnection::establish(&common::database_url()).unwrap();
            diesel::sql_query(format!("SET search_path TO {db}"))
                .execute(&mut conn)
                .unwrap();
            child_postgres(&mut conn, log_dir, mode);
        }
    }
}

macro_rules! child_body {
    ($conn:ident, $log_dir:ident, $mode:ident) => {{
        use tracing_subscriber::prelude::*;
        let (layer, guard) = audit_runtime::AuditLayer::builder(audit_runtime::FileStore::open($log_dir).unwrap())
            .build()
            .unwrap();
        let _default = tracing_subscriber::registry().with(layer).set_default();
        let mut source = FileSource::open($log_dir).unwrap();
        if $mode == "drain" {
            let n = Relay::new().drain($conn, &guard, &mut source).unwrap();
            guard.shutdown().unwrap();
            println!("drained {n}");
            return;
        }
        let mut relay = Relay::new().pause_after_flush(Duration::from_millis(300));
        let scope = AuditScope::new().actor(Actor::system("crash-test")).tenant("acme");
        for i in 0.. {
            scope.in_scope(|| {
                $conn
                    .audited()
                    .outbox(true)
                    .transaction(|tx| {
                        tx.update::<Customer, _, _>(customers::table, customers::balance.eq(customers::balance + 1))
                    })
                    .unwrap();
            });
            println!("committed {i}");
            // The window between commit and relay in which the parent may kill us.
            std::thread::sleep(Duration::from_millis(100));
            relay.run_once($conn, &guard, &mut source).unwrap();
        }
    }};
}

fn child_sqlite(conn: &mut SqliteConnection, log_dir: &str, mode: &str) {
    child_body!(conn, log_dir, mode)
}

fn child_postgres(conn: &mut PgConnection, log_dir: &str, mode: &str) {
    child_body!(conn, log_dir, mode)
}

fn spawn_child(target: &Target, log_dir: &std::path::Path, mode: &str) -> std::process::Child {
    let (backend, db) = match target {
        Target::Sqlite(path) => ("sqlite", path.display().to_string()),
        Target::Postgres { schema, .. } => ("postgres", schema.clone()),
    };
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "outbox_crash_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, format!("{backend}|{db}|{}|{mode}", log_dir.display()))
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Target::Postgres { url, .. } = target {
        cmd.env("AUDIT_TEST_DATABASE_URL", url);
    }
    cmd.spawn().unwrap()
}

/// Kills the child with SIGKILL after commits (before the relay) and after deliveries (before
/// the deletion), several times, then drains: every committed change has exactly one event.
fn sigkill_rounds<C: BalanceQueries>(target: Target, conn: &mut C) {
    let log_dir = tempfile::tempdir().unwrap();
    for round in 0..6 {
        let mut child = spawn_child(&target, log_dir.path(), "work");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (marker, nth) = if round % 2 == 0 {
            ("committed", 2)
        } else {
            ("relay flushed", 2)
        };
        let mut seen = 0;
        while seen < nth {
            let line = lines.next().expect("child output").unwrap();
            if line.contains(marker) {
                seen += 1;
            }
        }
        // SIGKILL: no destructor, no drain, no final sync.
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut child = spawn_child(&target, log_dir.path(), "drain");
    let out: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(child.wait().unwrap().success(), "the drain run failed: {out:?}");
    assert!(out.iter().any(|l| l.contains("drained")), "{out:?}");

    let (balance, pending) = conn.balances();
    assert_eq!(pending, 0, "the outbox is empty after the drain");
    assert!(balance >= 6, "at least one commit per round, got {balance}");
    let records = common::read_records(log_dir.path());
    let mut ids: Vec<_> = records.iter().map(|r| r.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), records.len(), "an event was delivered twice");
    let mut befores: Vec<i64> = records.iter().map(|r| before(r)["balance"].as_i64().unwrap()).collect();
    befores.sort_unstable();
    assert_eq!(
        befores,
        (0..balance).collect::<Vec<_>>(),
        "each committed update has exactly one event"
    );
    common::verify_dir(log_dir.path());
}

/// The final balance and the outbox length, per connection type.
trait BalanceQueries {
    fn balances(&mut self) -> (i64, i64);
}

impl BalanceQueries for SqliteConnection {
    fn balances(&mut self) -> (i64, i64) {
        let balance = customers::table.select(customers::balance).first(self).unwrap();
        (balance, audit_outbox::table.count().get_result(self).unwrap())
    }
}

impl BalanceQueries for PgConnection {
    fn balances(&mut self) -> (i64, i64) {
        let balance = customers::table.select(customers::balance).first(self).unwrap();
        (balance, audit_outbox::table.count().get_result(self).unwrap())
    }
}

#[test]
fn sigkill_between_commit_and_relay_loses_nothing_sqlite() {
    let db = common::SqliteDb::new();
    let mut conn = db.connect();
    conn.create_outbox().unwrap();
    let _: Customer = diesel::insert_into(customers::table)
        .values(new_customer("Ada", "free"))
        .returning(Customer::as_returning())
        .get_result(&mut conn)
        .unwrap();
    sigkill_rounds(Target::Sqlite(db.path.clone()), &mut conn);
}

#[test]
fn sigkill_between_commit_and_relay_loses_nothing_postgres() {
    let Some(db) = common::PgDb::new() else { return };
    let mut conn = db.connect();
    conn.create_outbox().unwrap();
    let _: Customer = diesel::insert_into(customers::table)
        .values(new_customer("Ada", "free"))
        .returning(Customer::as_returning())
        .get_result(&mut conn)
        .unwrap();
    sigkill_rounds(
        Target::Postgres {
            url: db.url.clone(),
            schema: db.schema.clone(),
        },
        &mut conn,
    );
}
