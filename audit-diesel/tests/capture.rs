//! Before/after capture of inserts, updates and deletes, single-row and bulk, on SQLite and
//! PostgreSQL, with redaction, transactions, savepoints and concurrent updates.

mod common;

use audit_diesel::{AuditedExt, Error, Snapshots};
use audit_runtime::{Actor, AuditScope, AuthMethod, FailureMode};
use common::{Customer, Log, OTHER_SSN, SSN, after, before, customers, fingerprint, new_customer};
use diesel::prelude::*;
use serde_json::json;

fn scope() -> AuditScope {
    AuditScope::new()
        .actor(Actor::user("usr_1", AuthMethod::Sso))
        .tenant("acme")
        .context("request_id", "req_1")
}

both!(insert_update_delete_are_recorded_with_redacted_snapshots, |db, conn| {
    let log = Log::new();
    let (created, change, deleted) = scope().in_scope(|| {
        let mut db = conn.audited();
        let created: Customer = db.insert(customers::table, new_customer("Ada", "free")).unwrap();
        let change = db
            .update::<Customer, _, _>(
                customers::table.find(created.id),
                (customers::plan.eq("pro"), customers::updated_at.eq(5)),
            )
            .unwrap();
        let deleted: Customer = db.delete(customers::table.find(created.id)).unwrap();
        (created, change, deleted)
    });
    assert_eq!(created.name, "Ada");
    assert_eq!(change.before.plan, "free");
    assert_eq!(change.after.plan, "pro");
    assert_eq!(change.changed, ["plan", "updated_at"]);
    assert_eq!(deleted, change.after);

    let records = log.records();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["customer.create", "customer.update", "customer.delete"]);
    let id = created.id.to_string();
    for r in &records {
        assert_eq!(r.resource.as_ref().unwrap().kind, "customer");
        assert_eq!(r.resource.as_ref().unwrap().id, id);
        assert_eq!(r.actor.id, "usr_1");
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        assert_eq!(r.context.as_ref().unwrap().request_id.as_deref(), Some("req_1"));
    }
    assert!(records[0].changes.as_ref().unwrap().before.is_none());
    // The SSN is shown as its keyed fingerprint, never as its value (`verify` reads every file).
    assert_eq!(
        after(&records[0]),
        &json!({"id": created.id, "name": "Ada", "plan": "free", "ssn": fingerprint(SSN), "balance": 0, "updated_at": 0})
    );
    assert_eq!(before(&records[1])["plan"], "free");
    assert_eq!(after(&records[1])["plan"], "pro");
    assert_eq!(after(&records[1])["ssn"], fingerprint(SSN));
    assert_eq!(
        before(&records[1])["ssn"],
        after(&records[1])["ssn"],
        "unchanged, same fingerprint"
    );
    assert_eq!(before(&records[2])["ssn"], fingerprint(SSN));
    // The update names the fields it changed; creates and deletes name none.
    assert_eq!(records[1].changes.as_ref().unwrap().fields, ["plan", "updated_at"]);
    assert!(records[0].changes.as_ref().unwrap().fields.is_empty());
    assert!(records[2].changes.as_ref().unwrap().fields.is_empty());
    assert_eq!(before(&records[2])["plan"], "pro");
    assert!(records[2].changes.as_ref().unwrap().after.is_none());
    log.verify();
});

both!(a_rolled_back_transaction_releases_nothing, |db, conn| {
    let log = Log::new();
    let ada: Customer = conn
        .audited()
        .insert(customers::table, new_customer("Ada", "free"))
        .unwrap();
    let result: Result<(), Error> = conn.audited().transaction(|tx| {
        tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))?;
        let _: Customer = tx.insert(customers::table, new_customer("Bob", "free"))?;
        Err(Error::NotFound {
            operation: "test",
            table: "rollback".into(),
        })
    });
    assert!(result.is_err());
    let plan: String = customers::table
        .find(ada.id)
        .select(customers::plan)
        .first(&mut conn)
        .unwrap();
    assert_eq!(plan, "free");
    assert_eq!(customers::table.count().get_result::<i64>(&mut conn).unwrap(), 1);
    let records = log.records();
    assert_eq!(records.len(), 1, "only the committed insert: {records:#?}");
    log.verify();
});

both!(a_rolled_back_savepoint_drops_only_its_events, |db, conn| {
    let log = Log::new();
    conn.audited()
        .transaction(|tx| -> Result<(), Error> {
            let ada: Customer = tx.insert(customers::table, new_customer("Ada", "free"))?;
            let inner: Result<(), Error> = tx.transaction(|tx| {
                tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("enterprise"))?;
                // Nested once more and committed: still dropped with its parent savepoint.
                tx.transaction(|tx| {
                    tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::name.eq("Eve"))
                        .map(drop)
                })?;
                Err(Error::NotFound {
                    operation: "test",
                    table: "savepoint".into(),
                })
            });
            assert!(inner.is_err());
            tx.transaction(|tx| {
                tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
                    .map(drop)
            })?;
            Ok(())
        })
        .unwrap();
    let row: Customer = customers::table.select(Customer::as_select()).first(&mut conn).unwrap();
    assert_eq!((row.name.as_str(), row.plan.as_str()), ("Ada", "pro"));
    let records = log.records();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["customer.create", "customer.update"]);
    assert_eq!(before(&records[1])["plan"], "free");
    assert_eq!(after(&records[1])["plan"], "pro");
    log.verify();
});

both!(events_wait_for_the_outermost_commit, |db, conn| {
    let log = Log::new();
    conn.audited()
        .transaction(|tx| -> Result<(), Error> {
            let _: Customer = tx.insert(customers::table, new_customer("Ada", "free"))?;
            log.guard.flush().unwrap();
            assert!(
                common::read_records(log.path()).is_empty(),
                "released before the commit"
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(log.records().len(), 1);
});

both!(bulk_update_and_delete_record_one_event_per_row, |db, conn| {
    let log = Log::new();
    let mut db = conn.audited();
    for i in 0..5 {
        let plan = if i < 3 { "free" } else { "pro" };
        let _: Customer = db
            .insert(customers::table, new_customer(&format!("c{i}"), plan))
            .unwrap();
    }
    let changes = db
        .update_all(
            customers::table.filter(customers::plan.eq("free")),
            customers::balance.eq(customers::balance + 10),
        )
        .unwrap();
    let changes: Vec<audit_diesel::Change<Customer>> = changes;
    assert_eq!(changes.len(), 3);
    for c in &changes {
        assert_eq!(c.before.id, c.after.id);
        assert_eq!((c.before.balance, c.after.balance), (0, 10));
        assert_eq!(c.changed, ["balance"]);
    }
    let gone: Vec<Customer> = db
        .delete_all(customers::table.filter(customers::plan.eq("pro")))
        .unwrap();
    assert_eq!(gone.len(), 2);
    let none: Vec<Customer> = db
        .delete_all(customers::table.filter(customers::plan.eq("none")))
        .unwrap();
    assert!(none.is_empty());

    let records = log.records();
    let updates: Vec<_> = records.iter().filter(|r| r.action == "customer.update").collect();
    assert_eq!(updates.len(), 3);
    for r in &updates {
        // Paired by primary key: the before and after of one event are the same row.
        assert_eq!(before(r)["id"], after(r)["id"]);
        assert_eq!(r.resource.as_ref().unwrap().id, after(r)["id"].to_string());
        assert_eq!(
            (before(r)["balance"].as_i64(), after(r)["balance"].as_i64()),
            (Some(0), Some(10))
        );
    }
    assert_eq!(records.iter().filter(|r| r.action == "customer.delete").count(), 2);
    log.verify();
});

both!(
    past_the_cap_nothing_changes_and_the_error_names_the_table,
    |db, conn| {
        let log = Log::new();
        for i in 0..5 {
            let _: Customer = conn
                .audited()
                .insert(customers::table, new_customer(&format!("c{i}"), "free"))
                .unwrap();
        }
        let before_count = log.records().len();
        let err = conn
            .audited()
            .max_rows(3)
            .update_all::<Customer, _, _>(
                customers::table.filter(customers::plan.eq("free")),
                customers::plan.eq("pro"),
            )
            .unwrap_err();
        assert!(matches!(err, Error::TooManyRows { cap: 3, .. }), "{err}");
        assert!(err.to_string().contains("customers"), "{err}");
        let err = conn
            .audited()
            .max_rows(4)
            .delete_all::<Customer, _>(customers::table)
            .unwrap_err();
        assert!(matches!(err, Error::TooManyRows { cap: 4, .. }), "{err}");
        // Inside a transaction the failed bulk operation changes nothing either, and the
        // transaction can go on.
        conn.audited()
            .max_rows(2)
            .transaction(|tx| -> Result<(), Error> {
                let err = tx
                    .update_all::<Customer, _, _>(customers::table, customers::plan.eq("x"))
                    .unwrap_err();
                assert!(matches!(err, Error::TooManyRows { .. }));
                Ok(())
            })
            .unwrap();
        let err = conn
            .audited()
            .update::<Customer, _, _>(customers::table, customers::plan.eq("pro"))
            .unwrap_err();
        assert!(matches!(err, Error::NotUnique { .. }), "{err}");
        let err = conn
            .audited()
            .update::<Customer, _, _>(customers::table.find(-1), customers::plan.eq("pro"))
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("customers"), "{err}");
        let err = conn
            .audited()
            .delete::<Customer, _>(customers::table.find(-1))
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");

        let plans: Vec<String> = customers::table.select(customers::plan).load(&mut conn).unwrap();
        assert!(plans.iter().all(|p| p == "free"));
        assert_eq!(plans.len(), 5);
        assert_eq!(log.records().len(), before_count);
    }
);

both!(noise_fields_and_diff_modes, |db, conn| {
    let log = Log::new();
    let ada: Customer = conn
        .audited()
        .insert(customers::table, new_customer("Ada", "free"))
        .unwrap();
    // Only the noise field changes: no event with skip_unchanged.
    let change = conn
        .audited()
        .ignore(&["updated_at"])
        .skip_unchanged(true)
        .update(customers::table.find(ada.id), customers::updated_at.eq(1))
        .unwrap();
    let change: audit_diesel::Change<Customer> = change;
    assert!(change.changed.is_empty());
    // Only the changed fields are recorded with Snapshots::Changed.
    let _: audit_diesel::Change<Customer> = conn
        .audited()
        .ignore(&["updated_at"])
        .snapshots(Snapshots::Changed)
        .update(
            customers::table.find(ada.id),
            (customers::plan.eq("pro"), customers::updated_at.eq(2)),
        )
        .unwrap();
    // Only a redacted field changes: it is named as changed, and its fingerprint changes with
    // it, while its value is never shown.
    let change: audit_diesel::Change<Customer> = conn
        .audited()
        .update(customers::table.find(ada.id), customers::ssn.eq(OTHER_SSN))
        .unwrap();
    assert_eq!(change.changed, ["ssn"]);
    // The same with only the changed fields recorded.
    let change: audit_diesel::Change<Customer> = conn
        .audited()
        .snapshots(Snapshots::Changed)
        .update(customers::table.find(ada.id), customers::ssn.eq(SSN))
        .unwrap();
    assert_eq!(change.changed, ["ssn"]);
    let records = log.records();
    assert_eq!(records.len(), 4);
    assert_eq!(before(&records[1]), &json!({"plan": "free"}));
    assert_eq!(after(&records[1]), &json!({"plan": "pro"}));
    let ssn_change = &records[2];
    assert_eq!(ssn_change.changes.as_ref().unwrap().fields, ["ssn"]);
    assert_eq!(before(ssn_change)["ssn"], fingerprint(SSN));
    assert_eq!(after(ssn_change)["ssn"], fingerprint(OTHER_SSN));
    assert_ne!(before(ssn_change), after(ssn_change));
    assert_eq!(records[3].changes.as_ref().unwrap().fields, ["ssn"]);
    assert_eq!(before(&records[3]), &json!({"ssn": fingerprint(OTHER_SSN)}));
    assert_eq!(after(&records[3]), &json!({"ssn": fingerprint(SSN)}));
    log.verify(); // and neither SSN appears in any record
});

both!(explicit_actions_and_plain_queries_in_the_transaction, |db, conn| {
    let log = Log::new();
    conn.audited()
        .transaction(|tx| -> Result<(), Error> {
            let ada: Customer = tx
                .action("customer.signup")
                .insert(customers::table, new_customer("Ada", "free"))?;
            tx.action("billing.update")
                .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))?;
            // Plain diesel in the same transaction sees the change.
            let plan: String = customers::table.find(ada.id).select(customers::plan).first(tx.conn())?;
            assert_eq!(plan, "pro");
            Ok(())
        })
        .unwrap();
    let actions: Vec<String> = log.records().into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["customer.signup", "billing.update"]);
});

both!(audited_work_inside_a_plain_transaction_is_refused, |db, conn| {
    let _log = Log::new();
    let result = conn.transaction(|conn| -> Result<(), Error> {
        let _: Customer = conn.audited().insert(customers::table, new_customer("Ada", "free"))?;
        Ok(())
    });
    assert!(matches!(result, Err(Error::UnauditedTransaction)), "{result:?}");
    let result = conn.transaction(|conn| audit_diesel::transaction(conn, |_| Ok::<_, Error>(())));
    assert!(matches!(result, Err(Error::UnauditedTransaction)), "{result:?}");
});

both!(fail_closed_without_a_sink_changes_nothing, |db, conn| {
    // No audit layer on this thread.
    let err = conn
        .audited()
        .failure_mode(FailureMode::Refuse)
        .insert::<Customer, _, _>(customers::table, new_customer("Ada", "free"))
        .unwrap_err();
    assert!(matches!(err, Error::Audit(_)), "{err}");
    let err = conn
        .audited()
        .failure_mode(FailureMode::Refuse)
        .transaction(|tx| {
            tx.insert::<Customer, _, _>(customers::table, new_customer("Ada", "free"))
                .map(drop)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Audit(_)), "{err}");
    assert_eq!(customers::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
});

both!(concurrent_updates_of_one_row_never_share_a_before_state, |db, conn| {
    let log = Log::new();
    let row: Customer = conn
        .audited()
        .insert(customers::table, new_customer("Ada", "free"))
        .unwrap();
    const THREADS: i64 = 4;
    const EACH: i64 = 15;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let dispatch = log.dispatch.clone();
            let db = &db;
            s.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let mut conn = db.connect();
                    for i in 0..EACH {
                        let target = customers::table.find(row.id);
                        let bump = customers::balance.eq(customers::balance + 1);
                        // Half in transactions, half as single operations.
                        let change: audit_diesel::Change<Customer> = if (t + i) % 2 == 0 {
                            conn.audited().transaction(|tx| tx.update(target, bump)).unwrap()
                        } else {
                            conn.audited().update(target, bump).unwrap()
                        };
                        assert_eq!(change.after.balance, change.before.balance + 1);
                    }
                });
            });
        }
    });
    let balance: i64 = customers::table
        .find(row.id)
        .select(customers::balance)
        .first(&mut conn)
        .unwrap();
    assert_eq!(balance, THREADS * EACH);
    let mut befores: Vec<i64> = log
        .records()
        .iter()
        .filter(|r| r.action == "customer.update")
        .map(|r| before(r)["balance"].as_i64().unwrap())
        .collect();
    befores.sort_unstable();
    assert_eq!(
        befores,
        (0..THREADS * EACH).collect::<Vec<_>>(),
        "every update saw the previous one"
    );
    log.verify();
});
