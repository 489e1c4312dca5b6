//! Audited diesel operations inside `#[audited]` calls (through the facade, as applications
//! write them): one change, one record. The change goes into the call's event when it is
//! released (on commit), nothing for a rollback, other changes and outboxed ones are recorded
//! as events of their own, and a change committed after the call returned is never lost.

mod common;

use audit_diesel::outbox::audit_outbox;
use audit_diesel::{AuditConnection, Audited, AuditedExt, Error, Relay};
use audit_runtime::{Actor, AuditScope, AuthMethod, FileSource, Record};
use common::{Customer, Log, SSN, after, before, customers, fingerprint, new_customer};
use diesel::prelude::*;

/// The audited fns of a small service, for one connection type.
macro_rules! service {
    ($name:ident, $conn:ty) => {
        mod $name {
            use super::*;

            /// One audited update in the call: its change is the call's.
            #[audit::audited(action = "billing.update", resource = "customer", id = id)]
            pub fn upgrade(conn: &mut $conn, id: i64, plan: &str) -> Result<(), Error> {
                conn.audited()
                    .action(audit::action!("billing.update"))
                    .update::<Customer, _, _>(customers::table.find(id), customers::plan.eq(plan.to_owned()))?;
                Ok(())
            }

            /// The same in an async fn.
            #[audit::audited(action = "billing.update", resource = "customer", id = id)]
            pub async fn upgrade_async(conn: &mut $conn, id: i64, plan: &str) -> Result<(), Error> {
                std::future::ready(()).await;
                conn.audited()
                    .update::<Customer, _, _>(customers::table.find(id), customers::plan.eq(plan.to_owned()))?;
                Ok(())
            }

            /// An update in a transaction that commits, or rolls back when `fail`.
            #[audit::audited(action = "billing.update", resource = "customer", id = id)]
            pub fn upgrade_in_transaction(conn: &mut $conn, id: i64, fail: bool) -> Result<(), Error> {
                conn.audited().transaction(|tx| {
                    tx.update::<Customer, _, _>(customers::table.find(id), customers::plan.eq("pro"))?;
                    if fail {
                        return Err(Error::NotFound {
                            operation: "test",
                            table: "rollback".into(),
                        });
                    }
                    Ok(())
                })
            }

            /// Two customers changed by one call on the first.
            #[audit::audited(action = "billing.update", resource = "customer", id = first)]
            pub fn upgrade_two(conn: &mut $conn, first: i64, second: i64) -> Result<(), Error> {
                conn.audited().transaction(|tx| {
                    tx.update::<Customer, _, _>(customers::table.find(first), customers::plan.eq("pro"))?;
                    tx.update::<Customer, _, _>(customers::table.find(second), customers::plan.eq("team"))?;
                    Ok(())
                })
            }

            /// A call on another resource type changing a customer.
            #[audit::audited(action = "settings.update", resource = "setting", id = "default_plan")]
            pub fn change_setting(conn: &mut $conn, id: i64) -> Result<(), Error> {
                conn.audited()
                    .update::<Customer, _, _>(customers::table.find(id), customers::plan.eq("legacy"))?;
                Ok(())
            }

            /// Called inside an audited transaction the caller commits after this returns.
            #[audit::audited(action = "billing.update", resource = "customer", id = id)]
            pub fn upgrade_in(tx: &mut Audited<'_, $conn>, id: i64) -> Result<(), Error> {
                tx.update::<Customer, _, _>(customers::table.find(id), customers::plan.eq("pro"))?;
                Ok(())
            }

            /// An outboxed update: delivered by the relay, after the call.
            #[audit::audited(action = "billing.update", resource = "customer", id = id)]
            pub fn upgrade_outboxed(conn: &mut $conn, id: i64) -> Result<(), Error> {
                conn.audited()
                    .outbox(true)
                    .action(audit::action!("billing.update"))
                    .update::<Customer, _, _>(customers::table.find(id), customers::plan.eq("pro"))?;
                Ok(())
            }
        }
    };
}

service!(sqlite_service, diesel::SqliteConnection);
service!(pg_service, diesel::PgConnection);

/// Runs the body against SQLite and PostgreSQL, with `$svc` the service for the connection.
macro_rules! both_services {
    ($name:ident, |$db:ident, $conn:ident, $svc:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() {
                use super::sqlite_service as $svc;
                let $db = common::SqliteDb::new();
                #[allow(unused_mut)]
                let mut $conn = $db.connect();
                $body
            }

            #[test]
            fn postgres() {
                use super::pg_service as $svc;
                let Some($db) = common::PgDb::new() else { return };
                #[allow(unused_mut)]
                let mut $conn = $db.connect();
                $body
            }
        }
    };
}

fn scope() -> AuditScope {
    AuditScope::new()
        .actor(Actor::user("usr_1", AuthMethod::Sso))
        .tenant("acme")
        .context("request_id", "req_1")
}

fn actions(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.action.as_str()).collect()
}

fn fields(r: &Record) -> &[String] {
    r.changes.as_ref().map(|c| c.fields.as_slice()).unwrap_or_default()
}

/// Polls a future that never waits on anything to completion.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

both_services!(one_change_gives_one_record, |db, conn, svc| {
    let log = Log::new();
    let ada: Customer = conn
        .audited()
        .insert(customers::table, new_customer("Ada", "free"))
        .unwrap();
    scope().in_scope(|| svc::upgrade(&mut conn, ada.id, "pro")).unwrap();
    scope()
        .in_scope(|| block_on(svc::upgrade_async(&mut conn, ada.id, "team")))
        .unwrap();

    let records = log.records();
    assert_eq!(
        actions(&records),
        ["customer.create", "billing.update", "billing.update"]
    );
    for (r, (from, to)) in records[1..].iter().zip([("free", "pro"), ("pro", "team")]) {
        // The call's event, with the change its body made.
        assert_eq!(r.resource.as_ref().unwrap().kind, "customer");
        assert_eq!(r.resource.as_ref().unwrap().id, ada.id.to_string());
        assert_eq!(r.actor.id, "usr_1");
        assert_eq!(r.context.as_ref().unwrap().request_id.as_deref(), Some("req_1"));
        assert_eq!(before(r)["plan"], from);
        assert_eq!(after(r)["plan"], to);
        assert_eq!(after(r)["ssn"], fingerprint(SSN));
        assert_eq!(fields(r), ["plan"]);
    }
    log.verify();
});

both_services!(
    in_a_transaction_the_change_reaches_the_call_on_commit_and_never_on_rollback,
    |db, conn, svc| {
        let log = Log::new();
        let ada: Customer = conn
            .audited()
            .insert(customers::table, new_customer("Ada", "free"))
            .unwrap();
        scope()
            .in_scope(|| svc::upgrade_in_transaction(&mut conn, ada.id, true))
            .unwrap_err();
        scope()
            .in_scope(|| svc::upgrade_in_transaction(&mut conn, ada.id, false))
            .unwrap();

        let records = log.records();
        assert_eq!(
            actions(&records),
            ["customer.create", "billing.update", "billing.update"]
        );
        // The rolled-back call: a failure, and no change (the change never happened).
        let failed = &records[1];
        assert!(!failed.outcome.is_success());
        assert!(failed.changes.is_none(), "{failed:#?}");
        // The committed one carries its change; no `customer.update` of its own.
        assert!(records[2].outcome.is_success());
        assert_eq!(before(&records[2])["plan"], "free");
        assert_eq!(after(&records[2])["plan"], "pro");
        log.verify();
    }
);

both_services!(
    a_call_takes_the_first_change_of_its_resource_type_only,
    |db, conn, svc| {
        let log = Log::new();
        let ada: Customer = conn
            .audited()
            .insert(customers::table, new_customer("Ada", "free"))
            .unwrap();
        let bob: Customer = conn
            .audited()
            .insert(customers::table, new_customer("Bob", "free"))
            .unwrap();
        scope()
            .in_scope(|| svc::upgrade_two(&mut conn, ada.id, bob.id))
            .unwrap();
        scope().in_scope(|| svc::change_setting(&mut conn, bob.id)).unwrap();

        let records = log.records();
        let actions = actions(&records);
        assert_eq!(actions[..2], ["customer.create", "customer.create"]);
        let calls: Vec<&Record> = records.iter().filter(|r| r.action != "customer.update").collect();
        let own: Vec<&Record> = records.iter().filter(|r| r.action == "customer.update").collect();
        // The first customer's change is the call's; the second one is an event of its own, with
        // the call's actor and request.
        assert_eq!(calls[2].action, "billing.update");
        assert_eq!(calls[2].resource.as_ref().unwrap().id, ada.id.to_string());
        assert_eq!(after(calls[2])["id"], ada.id);
        assert_eq!(after(calls[2])["plan"], "pro");
        assert_eq!(own.len(), 2, "{actions:?}");
        assert_eq!(own[0].resource.as_ref().unwrap().id, bob.id.to_string());
        assert_eq!(after(own[0])["plan"], "team");
        assert_eq!(own[0].actor.id, "usr_1");
        assert_eq!(own[0].context.as_ref().unwrap().request_id.as_deref(), Some("req_1"));
        // A call on another resource type takes no customer change.
        let setting = calls[3];
        assert_eq!(setting.action, "settings.update");
        assert!(setting.changes.is_none(), "{setting:#?}");
        assert_eq!(after(own[1])["plan"], "legacy");
        log.verify();
    }
);

both_services!(
    a_change_committed_after_the_call_returned_is_recorded_on_its_own,
    |db, conn, svc| {
        let log = Log::new();
        let ada: Customer = conn
            .audited()
            .insert(customers::table, new_customer("Ada", "free"))
            .unwrap();
        scope()
            .in_scope(|| conn.audited().transaction(|tx| svc::upgrade_in(tx, ada.id)))
            .unwrap();
        let records = log.records();
        // The call ended before the commit: its event cannot carry the change, which is
        // recorded when released, as an event of its own.
        assert_eq!(
            actions(&records),
            ["customer.create", "billing.update", "customer.update"]
        );
        assert!(records[1].changes.is_none());
        assert_eq!(before(&records[2])["plan"], "free");
        assert_eq!(after(&records[2])["plan"], "pro");
        log.verify();
    }
);

both_services!(outboxed_changes_are_recorded_as_their_own_events, |db, conn, svc| {
    let log = Log::new();
    conn.create_outbox().unwrap();
    let ada: Customer = conn
        .audited()
        .insert(customers::table, new_customer("Ada", "free"))
        .unwrap();
    scope().in_scope(|| svc::upgrade_outboxed(&mut conn, ada.id)).unwrap();
    assert_eq!(audit_outbox::table.count().get_result::<i64>(&mut conn).unwrap(), 1);
    let call = log.records();
    assert_eq!(actions(&call), ["customer.create", "billing.update"]);
    assert!(call[1].changes.is_none(), "the relay runs outside the call");

    let mut source = FileSource::open(log.path()).unwrap();
    Relay::new().drain(&mut conn, &log.guard, &mut source).unwrap();
    let records = log.records();
    assert_eq!(records.len(), 3);
    let relayed = &records[2];
    assert_eq!(relayed.action, "billing.update");
    assert_eq!(after(relayed)["plan"], "pro");
    // Captured with the call's scope: correlated with it by actor and request.
    assert_eq!(relayed.actor.id, "usr_1");
    assert_eq!(relayed.context.as_ref().unwrap().request_id.as_deref(), Some("req_1"));
    log.verify();
});
