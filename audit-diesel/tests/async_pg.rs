//! The diesel-async integration against a real PostgreSQL (`AsyncPgConnection`, plain and
//! pooled by deadpool and bb8): before/after captured with the change and released only on
//! commit, nothing for a rollback or a cancelled transaction, one change one record inside an
//! async `#[audited]` fn, the outbox (one statement with SQL-side fingerprints) and its relay,
//! redacted fields as keyed fingerprints, bulk limits and checked actions: the semantics of
//! the sync API, which the other test files check on both databases.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_diesel::outbox::audit_outbox;
use audit_diesel::{AsyncAuditConnection, AsyncAuditedExt, Error, Relay, Snapshots};
use audit_runtime::{
    Actor, AuditError, AuditScope, AuthMethod, Category, FailureMode, FileSource, Record, WithAuditScope,
};
use common::{Customer, Log, OTHER_SSN, SSN, after, before, customers, fingerprint, new_customer};
use diesel::connection::InstrumentationEvent;
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

fn scope() -> AuditScope {
    AuditScope::new()
        .actor(Actor::user("usr_1", AuthMethod::Sso))
        .tenant("acme")
        .context("request_id", "req_1")
}

fn rollback() -> Error {
    Error::NotFound {
        operation: "test",
        table: "rollback".into(),
    }
}

fn actions(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.action.as_str()).collect()
}

async fn plan_of(conn: &mut AsyncPgConnection, id: i64) -> String {
    customers::table
        .find(id)
        .select(customers::plan)
        .get_result(conn)
        .await
        .unwrap()
}

async fn insert_ada(conn: &mut AsyncPgConnection) -> Customer {
    conn.audited()
        .insert(customers::table, new_customer("Ada", "free"))
        .await
        .unwrap()
}

/// Compiles only for a `Send` future: what a tokio task or an axum handler needs.
fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test]
async fn insert_update_delete_are_recorded_with_before_and_after() {
    let Some(db) = common::PgDb::new() else { return };
    let log = Log::new();
    let mut conn = db.connect_async().await;
    let (created, change, deleted) = async {
        let mut db = conn.audited();
        let created: Customer = db.insert(customers::table, new_customer("Ada", "free")).await.unwrap();
        let change = db
            .update::<Customer, _, _>(
                customers::table.find(created.id),
                (customers::plan.eq("pro"), customers::updated_at.eq(5)),
            )
            .await
            .unwrap();
        let deleted: Customer = db.delete(customers::table.find(created.id)).await.unwrap();
        (created, change, deleted)
    }
    .with_audit_scope(scope())
    .await;
    assert_eq!(
        (change.before.plan.as_str(), change.after.plan.as_str()),
        ("free", "pro")
    );
    assert_eq!(change.changed, ["plan", "updated_at"]);
    assert_eq!(deleted.id, created.id);

    let records = log.records();
    assert_eq!(
        actions(&records),
        ["customer.create", "customer.update", "customer.delete"]
    );
    for r in &records {
        assert_eq!(r.actor.id, "usr_1");
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        assert_eq!(r.context.as_ref().unwrap().request_id.as_deref(), Some("req_1"));
        assert_eq!(r.resource.as_ref().unwrap().id, created.id.to_string());
    }
    let create = records[0].changes.as_ref().unwrap();
    assert!(create.before.is_none());
    assert_eq!(after(&records[0])["name"], "Ada");
    assert_eq!(after(&records[0])["ssn"], fingerprint(SSN));
    assert_eq!(before(&records[1])["plan"], "free");
    assert_eq!(after(&records[1])["plan"], "pro");
    assert_eq!(records[1].changes.as_ref().unwrap().fields, ["plan", "updated_at"]);
    assert_eq!(before(&records[2])["plan"], "pro");
    assert!(records[2].changes.as_ref().unwrap().after.is_none());
    log.verify();
}

#[tokio::test]
async fn a_rolled_back_transaction_records_nothing_and_a_commit_releases() {
    let Some(db) = common::PgDb::new() else { return };
    let log = Log::new();
    let mut conn = db.connect_async().await;
    let ada = insert_ada(&mut conn).await;

    let result: Result<(), Error> = conn
        .audited()
        .transaction(async |tx| {
            tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
                .await?;
            Err(rollback())
        })
        .await;
    assert!(matches!(result, Err(Error::NotFound { .. })));
    assert_eq!(plan_of(&mut conn, ada.id).await, "free");
    assert_eq!(actions(&log.records()), ["customer.create"], "nothing for the rollback");

    // A commit releases the events of the transaction, but not those of a savepoint that
    // rolled back inside it.
    let committed: Result<(), Error> = conn
        .audited()
        .transaction(async |tx| {
            tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
                .await?;
            let inner: Result<(), Error> = tx
                .transaction(async |tx| {
                    tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::name.eq("Eve"))
                        .await?;
                    Err(rollback())
                })
                .await;
            assert!(inner.is_err());
            assert!(tx.in_transaction());
            tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("team"))
                .await?;
            Ok(())
        })
        .await;
    committed.unwrap();
    let records = log.records();
    assert_eq!(
        actions(&records),
        ["customer.create", "customer.update", "customer.update"]
    );
    assert_eq!(after(&records[1])["plan"], "pro");
    assert_eq!(after(&records[2])["plan"], "team");
    assert_eq!(after(&records[2])["name"], "Ada", "the savepoint's change rolled back");
    log.verify();
}

#[tokio::test]
async fn audited_work_inside_a_plain_transaction_is_refused() {
    let Some(db) = common::PgDb::new() else { return };
    let _log = Log::new();
    let mut conn = db.connect_async().await;
    let ada = insert_ada(&mut conn).await;
    let result: Result<(), Error> = conn
        .transaction(async |conn| {
            conn.audited()
                .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
                .await?;
            Ok(())
        })
        .await;
    assert!(matches!(result, Err(Error::UnauditedTransaction)), "{result:?}");
    assert_eq!(plan_of(&mut conn, ada.id).await, "free");
}

#[tokio::test]
async fn a_change_of_a_redacted_field_shows_as_a_fingerprint_change() {
    let Some(db) = common::PgDb::new() else { return };
    let log = Log::new();
    let mut conn = db.connect_async().await;
    let ada = insert_ada(&mut conn).await;
    let change = conn
        .audited()
        .update::<Customer, _, _>(customers::table.find(ada.id), customers::ssn.eq(OTHER_SSN))
        .await
        .unwrap();
    assert_eq!(change.changed, ["ssn"]);
    let records = log.records();
    let update = &records[1];
    assert_eq!(update.changes.as_ref().unwrap().fields, ["ssn"]);
    assert_eq!(before(update)["ssn"], fingerprint(SSN));
    assert_eq!(after(update)["ssn"], fingerprint(OTHER_SSN));
    assert_ne!(before(update)["ssn"], after(update)["ssn"]);
    // Only the changed fields, and the redacted one still as fingerprints.
    conn.audited()
        .snapshots(Snapshots::Changed)
        .update::<Customer, _, _>(customers::table.find(ada.id), customers::ssn.eq(SSN))
        .await
        .unwrap();
    let records = log.records();
    assert_eq!(before(&records[2]), &serde_json::json!({"ssn": fingerprint(OTHER_SSN)}));
    assert_eq!(after(&records[2]), &serde_json::json!({"ssn": fingerprint(SSN)}));
    log.verify(); // and no raw SSN anywhere in the log
}

#[tokio::test]
async fn bulk_operations_are_capped_and_single_row_ones_must_match_one_row() {
    let Some(db) = common::PgDb::new() else { return };
    let log = Log::new();
    let mut conn = db.connect_async().await;
    let rows: Vec<Customer> = conn
        .audited()
        .insert_all(customers::table, ["a", "b", "c"].map(|name| new_customer(name, "free")))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);

    let err = conn
        .audited()
        .max_rows(2)
        .update_all::<Customer, _, _>(customers::table, customers::plan.eq("pro"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooManyRows { cap: 2, .. }), "{err}");
    let err = conn
        .audited()
        .max_rows(2)
        .delete_all::<Customer, _>(customers::table)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooManyRows { cap: 2, .. }), "{err}");
    let err = conn
        .audited()
        .update::<Customer, _, _>(customers::table, customers::plan.eq("pro"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotUnique { .. }), "{err}");
    let err = conn
        .audited()
        .delete::<Customer, _>(customers::table.find(-1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(log.records().len(), 3, "the refused operations recorded nothing");
    let plans: Vec<String> = customers::table.select(customers::plan).load(&mut conn).await.unwrap();
    assert_eq!(plans, ["free", "free", "free"], "and changed nothing");

    let changes = conn
        .audited()
        .max_rows(3)
        .update_all::<Customer, _, _>(customers::table, customers::plan.eq("pro"))
        .await
        .unwrap();
    assert_eq!(changes.len(), 3);
    let deleted = conn
        .audited()
        .delete_all::<Customer, _>(customers::table.filter(customers::name.eq("a")))
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    let records = log.records();
    assert_eq!(
        actions(&records)[3..],
        [
            "customer.update",
            "customer.update",
            "customer.update",
            "customer.delete"
        ]
    );
    log.verify();
}

#[tokio::test]
async fn typed_and_named_actions_are_checked_like_the_sync_ones() {
    let Some(db) = common::PgDb::new() else { return };
    audit_runtime::install_vocabulary(audit::vocabulary!());
    let log = Log::new();
    let mut conn = db.connect_async().await;
    let ada = insert_ada(&mut conn).await;
    conn.audited()
        .action(audit::action!("settings.update"))
        .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
        .await
        .unwrap();
    conn.audited()
        .action("settings.update")
        .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("team"))
        .await
        .unwrap();
    // An unknown name under Refuse: refused before the change, alone and in a transaction.
    let err = conn
        .audited()
        .failure_mode(FailureMode::Refuse)
        .action("biling.update")
        .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("gone"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Audit(AuditError::UnknownAction { action, .. }) if action == "biling.update"),
        "{err:?}"
    );
    let result: Result<(), Error> = conn
        .audited()
        .failure_mode(FailureMode::Refuse)
        .transaction(async |tx| {
            tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::name.eq("Eve"))
                .await?;
            tx.action(String::from("biling.update"))
                .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("gone"))
                .await?;
            Ok(())
        })
        .await;
    assert!(matches!(result, Err(Error::Audit(_))), "{result:?}");
    assert_eq!(plan_of(&mut conn, ada.id).await, "team");

    let records = log.records();
    let got: Vec<(&str, Category)> = records.iter().map(|r| (r.action.as_str(), r.category)).collect();
    assert_eq!(
        got,
        [
            ("customer.create", Category::Mutation),
            ("settings.update", Category::Admin),
            ("settings.update", Category::Admin),
        ]
    );
    log.verify();
}

// ---- inside #[audited] calls ----

/// One audited update in an async audited fn: its change is the call's.
#[audit::audited(action = "billing.update", resource = "customer", id = id)]
async fn upgrade(conn: &mut AsyncPgConnection, id: i64, plan: &str) -> Result<(), Error> {
    conn.audited()
        .action(audit::action!("billing.update"))
        .update::<Customer, _, _>(customers::table.find(id), customers::plan.eq(plan.to_owned()))
        .await?;
    Ok(())
}

/// An update in a transaction that commits, or rolls back when `fail`.
#[audit::audited(action = "billing.update", resource = "customer", id = id)]
async fn upgrade_in_transaction(conn: &mut AsyncPgConnection, id: i64, fail: bool) -> Result<(), Error> {
    conn.audited()
        .transaction(async |tx| {
            tx.update::<Customer, _, _>(customers::table.find(id), customers::plan.eq("team"))
                .await?;
            // A second customer's change is not the call's: an event of its own.
            tx.update::<Customer, _, _>(customers::table.find(id + 1), customers::plan.eq("team"))
                .await?;
            if fail { Err(rollback()) } else { Ok(()) }
        })
        .await
}

#[tokio::test]
async fn one_change_is_one_record_inside_an_async_audited_fn() {
    let Some(db) = common::PgDb::new() else { return };
    let log = Log::new();
    let mut conn = db.connect_async().await;
    let ada = insert_ada(&mut conn).await;
    let _bob = insert_ada(&mut conn).await;

    assert_send(upgrade(&mut conn, ada.id, "pro"))
        .with_audit_scope(scope())
        .await
        .unwrap();
    let records = log.records();
    assert_eq!(
        actions(&records),
        ["customer.create", "customer.create", "billing.update"]
    );
    let call = &records[2];
    assert_eq!(call.actor.id, "usr_1");
    assert_eq!(call.resource.as_ref().unwrap().id, ada.id.to_string());
    assert!(call.outcome.is_success());
    assert_eq!(before(call)["plan"], "free");
    assert_eq!(after(call)["plan"], "pro");
    assert_eq!(call.changes.as_ref().unwrap().fields, ["plan"]);

    // Rolled back: the call's failure, without a change, and nothing else.
    upgrade_in_transaction(&mut conn, ada.id, true)
        .with_audit_scope(scope())
        .await
        .unwrap_err();
    let records = log.records();
    assert_eq!(records.len(), 4);
    assert_eq!(records[3].action, "billing.update");
    assert!(!records[3].outcome.is_success());
    assert!(records[3].changes.is_none(), "a rolled-back change is never offered");
    assert_eq!(plan_of(&mut conn, ada.id).await, "pro");

    // Committed: the call's event carries its customer's change; the other customer's change
    // is recorded on its own, in the call's scope.
    assert_send(upgrade_in_transaction(&mut conn, ada.id, false))
        .with_audit_scope(scope())
        .await
        .unwrap();
    let records = log.records();
    assert_eq!(actions(&records[4..]), ["customer.update", "billing.update"]);
    assert_eq!(records[4].resource.as_ref().unwrap().id, (ada.id + 1).to_string());
    assert_eq!(records[4].actor.id, "usr_1");
    assert_eq!(records[5].resource.as_ref().unwrap().id, ada.id.to_string());
    assert_eq!(after(&records[5])["plan"], "team");
    let billing = records.iter().filter(|r| r.action == "billing.update").count();
    assert_eq!(billing, 3, "one record per call, three calls");
    log.verify();
}

/// An outboxed update in an async audited fn: delivered later by the relay, outside the call.
#[audit::audited(action = "billing.update", resource = "customer", id = id)]
async fn upgrade_outboxed(conn: &mut AsyncPgConnection, id: i64) -> Result<(), Error> {
    conn.audited()
        .outbox(true)
        .action(audit::action!("billing.update"))
        .update::<Customer, _, _>(customers::table.find(id), customers::plan.eq("pro"))
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_outboxed_change_inside_an_async_audited_fn_is_an_event_of_its_own() {
    let Some(db) = common::PgDb::new() else { return };
    let log = Log::new();
    let mut conn = db.connect_async().await;
    conn.create_outbox().await.unwrap();
    let ada = insert_ada(&mut conn).await;
    upgrade_outboxed(&mut conn, ada.id)
        .with_audit_scope(scope())
        .await
        .unwrap();
    let call = log.records();
    assert_eq!(actions(&call), ["customer.create", "billing.update"]);
    assert!(call[1].changes.is_none(), "the relay runs outside the call");

    let mut source = FileSource::open(log.path()).unwrap();
    let delivered = Relay::new()
        .drain_async(&mut conn, &log.guard, &mut source)
        .await
        .unwrap();
    assert_eq!(delivered, 1);
    let records = log.records();
    assert_eq!(records.len(), 3);
    let relayed = &records[2];
    assert_eq!(relayed.action, "billing.update");
    assert_eq!(after(relayed)["plan"], "pro");
    // Captured in the call's scope: correlated with the call by actor and request.
    assert_eq!(relayed.actor.id, "usr_1");
    assert_eq!(relayed.context.as_ref().unwrap().request_id.as_deref(), Some("req_1"));
    log.verify();
}

// ---- the outbox ----

/// The SQL of every statement the connection runs from now on.
fn record_statements(conn: &mut AsyncPgConnection) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            sink.lock().unwrap().push(query.to_string());
        }
    });
    seen
}

#[tokio::test]
async fn the_outbox_holds_committed_events_until_the_relay_delivers_them() {
    let Some(db) = common::PgDb::new() else { return };
    let log = Log::new();
    let mut conn = db.connect_async().await;
    conn.create_outbox().await.unwrap();
    let ada = insert_ada(&mut conn).await;
    let update = async |conn: &mut AsyncPgConnection, ssn: &str| {
        conn.audited()
            .outbox(true)
            .update::<Customer, _, _>(customers::table.find(ada.id), customers::ssn.eq(ssn.to_owned()))
            .with_audit_scope(scope())
            .await
            .unwrap()
    };
    update(&mut conn, SSN).await; // the first one proves the plan for the model
    let seen = record_statements(&mut conn);
    let change = update(&mut conn, OTHER_SSN).await;
    assert_eq!(change.changed, ["ssn"]);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "one statement, no BEGIN/COMMIT: {seen:#?}");
        assert!(seen[0].contains("INSERT INTO \"audit_outbox\""), "{}", seen[0]);
    }
    // A rolled-back transaction leaves no outbox row; a committed one leaves its rows.
    let result: Result<(), Error> = conn
        .audited()
        .outbox(true)
        .transaction(async |tx| {
            tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("gone"))
                .await?;
            Err(rollback())
        })
        .await;
    assert!(result.is_err());
    conn.audited()
        .outbox(true)
        .transaction(async |tx| {
            let _: Customer = tx.insert(customers::table, new_customer("Bob", "free")).await?;
            tx.update_all::<Customer, _, _>(
                customers::table.filter(customers::name.eq("Bob")),
                customers::plan.eq("pro"),
            )
            .await?;
            Ok::<_, Error>(())
        })
        .with_audit_scope(scope())
        .await
        .unwrap();

    let events: Vec<String> = audit_outbox::table
        .select(audit_outbox::event)
        .order(audit_outbox::seq)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| !e.contains(SSN) && !e.contains(OTHER_SSN)));
    assert_eq!(
        actions(&log.records()),
        ["customer.create"],
        "nothing delivered before the relay"
    );

    let mut source = FileSource::open(log.path()).unwrap();
    let mut relay = Relay::new().batch_size(3);
    let delivered = relay.drain_async(&mut conn, &log.guard, &mut source).await.unwrap();
    assert_eq!(delivered, 4);
    assert_eq!(relay.drain_async(&mut conn, &log.guard, &mut source).await.unwrap(), 0);
    let records = log.records();
    assert_eq!(
        actions(&records),
        [
            "customer.create",
            "customer.update",
            "customer.update",
            "customer.create",
            "customer.update"
        ]
    );
    // The database computed the fingerprints of the one-statement updates: the same as the
    // model's.
    assert_eq!(before(&records[2])["ssn"], fingerprint(SSN));
    assert_eq!(after(&records[2])["ssn"], fingerprint(OTHER_SSN));
    assert_eq!(records[2].changes.as_ref().unwrap().fields, ["ssn"]);
    assert_eq!(records[2].actor.id, "usr_1");
    assert_eq!(records[4].actor.id, "usr_1");
    log.verify();
}

// ---- pools ----

#[tokio::test]
async fn pooled_connections_from_deadpool_and_bb8_are_audited() {
    let Some(db) = common::PgDb::new() else { return };
    let log = Log::new();
    let manager = || AsyncDieselConnectionManager::<AsyncPgConnection>::new(db.async_url());

    let deadpool = diesel_async::pooled_connection::deadpool::Pool::builder(manager())
        .max_size(2)
        .build()
        .unwrap();
    let mut conn = deadpool.get().await.unwrap();
    let ada: Customer = conn
        .audited()
        .insert(customers::table, new_customer("Ada", "free"))
        .await
        .unwrap();
    conn.audited()
        .transaction(async |tx| {
            tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
                .await?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    drop(conn);

    let bb8 = diesel_async::pooled_connection::bb8::Pool::builder()
        .max_size(2)
        .build(manager())
        .await
        .unwrap();
    let mut conn = bb8.get().await.unwrap();
    conn.audited()
        .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("team"))
        .await
        .unwrap();
    let _: Customer = conn.audited().delete(customers::table.find(ada.id)).await.unwrap();
    drop(conn);

    let records = log.records();
    assert_eq!(
        actions(&records),
        [
            "customer.create",
            "customer.update",
            "customer.update",
            "customer.delete"
        ]
    );
    assert_eq!(after(&records[1])["plan"], "pro");
    assert_eq!(before(&records[2])["plan"], "pro");
    assert_eq!(after(&records[2])["plan"], "team");
    log.verify();
}

#[tokio::test]
async fn a_cancelled_transaction_changes_and_records_nothing() {
    let Some(db) = common::PgDb::new() else { return };
    let log = Log::new();
    let pool = diesel_async::pooled_connection::deadpool::Pool::builder(AsyncDieselConnectionManager::<
        AsyncPgConnection,
    >::new(db.async_url()))
    .max_size(1)
    .build()
    .unwrap();
    let ada = insert_ada(&mut pool.get().await.unwrap()).await;
    // The request is dropped (a client went away, a timeout) after the update, before the
    // commit: the change is never committed, so it has no event.
    let cancelled = tokio::time::timeout(Duration::from_millis(200), async {
        let mut conn = pool.get().await.unwrap();
        conn.audited()
            .transaction(async |tx| {
                tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
                    .await?;
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, Error>(())
            })
            .await
    })
    .await;
    assert!(cancelled.is_err(), "timed out");
    // The pool threw the connection away (it was inside a transaction); a fresh one sees the
    // row unchanged.
    let mut conn = pool.get().await.unwrap();
    assert!(!conn.in_plain_transaction().unwrap());
    assert_eq!(plan_of(&mut conn, ada.id).await, "free");
    assert_eq!(actions(&log.records()), ["customer.create"]);
}
