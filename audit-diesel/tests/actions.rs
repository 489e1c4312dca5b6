//! The actions audited operations are recorded under: typed ones checked at compile time,
//! names checked against the vocabulary compiled into the binary before the change is made,
//! the model's defaults (typed when the derive found them, checked at run time otherwise), and
//! a relay that delivers committed changes whatever its own vocabulary says.

mod common;

use audit::AuditModel;
use audit_diesel::outbox::audit_outbox;
use audit_diesel::{AuditConnection, AuditedExt, Error, Relay};
use audit_runtime::{AuditError, Category, FailureMode, FileSource, ModelAction};
use common::{Customer, Log, customers, new_customer};
use diesel::prelude::*;

/// Installs this crate's `audit.toml` as the process's vocabulary (once per process).
fn install_vocabulary() {
    audit_runtime::install_vocabulary(audit::vocabulary!());
    assert!(audit_runtime::installed_vocabulary().is_some());
}

both!(typed_and_named_actions_take_the_vocabularys_category, |db, conn| {
    install_vocabulary();
    let log = Log::new();
    let ada: Customer = conn
        .audited()
        .insert(customers::table, new_customer("Ada", "free"))
        .unwrap();
    let typed = audit::action!("settings.update");
    conn.audited()
        .action(typed)
        .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
        .unwrap();
    conn.audited()
        .action("settings.update")
        .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("team"))
        .unwrap();
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
});

both!(an_unknown_named_action_is_refused_before_the_change, |db, conn| {
    install_vocabulary();
    let log = Log::new();
    let ada: Customer = conn
        .audited()
        .insert(customers::table, new_customer("Ada", "free"))
        .unwrap();
    conn.create_outbox().unwrap();
    let refusing = || FailureMode::Refuse;
    let check = |err: Error| match err {
        Error::Audit(AuditError::UnknownAction { action, message }) => {
            assert_eq!(action, "biling.update");
            assert!(message.contains("did you mean `billing.update`"), "{message}");
        }
        other => panic!("expected an unknown action, got {other:?}"),
    };
    // Alone, in a transaction (which rolls back with it), with the outbox, and for inserts
    // and deletes: nothing changes and nothing is recorded.
    check(
        conn.audited()
            .failure_mode(refusing())
            .action("biling.update")
            .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
            .unwrap_err(),
    );
    let result: Result<(), Error> = conn.audited().failure_mode(refusing()).transaction(|tx| {
        tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::name.eq("Eve"))?;
        tx.action(String::from("biling.update"))
            .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))?;
        Ok(())
    });
    check(result.unwrap_err());
    check(
        conn.audited()
            .failure_mode(refusing())
            .outbox(true)
            .action("biling.update")
            .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
            .unwrap_err(),
    );
    check(
        conn.audited()
            .failure_mode(refusing())
            .action("biling.update")
            .insert::<Customer, _, _>(customers::table, new_customer("Bob", "free"))
            .unwrap_err(),
    );
    check(
        conn.audited()
            .failure_mode(refusing())
            .action("biling.update")
            .delete::<Customer, _>(customers::table.find(ada.id))
            .unwrap_err(),
    );
    let rows: Vec<Customer> = customers::table.select(Customer::as_select()).load(&mut conn).unwrap();
    assert_eq!(rows, [ada]);
    assert_eq!(audit_outbox::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    assert_eq!(log.records().len(), 1, "only the insert");
});

both!(
    under_warn_an_unknown_named_action_is_recorded_and_counted,
    |db, conn| {
        install_vocabulary();
        let log = Log::new();
        let before = audit_runtime::unknown_action_count();
        let ada: Customer = conn
            .audited()
            .failure_mode(FailureMode::Warn)
            .action("customer.signnup")
            .insert(customers::table, new_customer("Ada", "free"))
            .unwrap();
        assert_eq!(ada.name, "Ada");
        let records = log.records();
        assert_eq!(records[0].action, "customer.signnup");
        assert!(audit_runtime::unknown_action_count() > before);
        log.verify();
    }
);

/// A hand-written model: its default actions (`gadget.update`, ...) are not checked when it
/// compiles, so they are checked at run time.
#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = customers)]
struct Gadget {
    id: i64,
    plan: String,
}

impl AuditModel for Gadget {
    const RESOURCE_TYPE: &'static str = "gadget";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_snapshot(&self) -> serde_json::Value {
        serde_json::json!({ "id": self.id, "plan": self.plan })
    }
}

both!(
    default_actions_are_typed_when_derived_and_checked_otherwise,
    |db, conn| {
        install_vocabulary();
        // The derive found `customer.update` in audit.toml: recorded as typed, never refused.
        assert!(matches!(Customer::UPDATE_ACTION, ModelAction::Checked(a) if a.name() == "customer.update"));
        assert_eq!(Gadget::UPDATE_ACTION, ModelAction::Unchecked);
        let log = Log::new();
        let ada: Customer = conn
            .audited()
            .failure_mode(FailureMode::Refuse)
            .insert(customers::table, new_customer("Ada", "free"))
            .unwrap();
        conn.audited()
            .failure_mode(FailureMode::Refuse)
            .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))
            .unwrap();
        // `gadget.update` is not declared: refused before the change.
        let err = conn
            .audited()
            .failure_mode(FailureMode::Refuse)
            .update::<Gadget, _, _>(customers::table.find(ada.id), customers::plan.eq("gadget"))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Audit(AuditError::UnknownAction { action, .. }) if action == "gadget.update"),
            "{err:?}"
        );
        let plan: String = customers::table
            .find(ada.id)
            .select(customers::plan)
            .first(&mut conn)
            .unwrap();
        assert_eq!(plan, "pro");
        let actions: Vec<String> = log.records().into_iter().map(|r| r.action).collect();
        assert_eq!(actions, ["customer.create", "customer.update"]);
    }
);

both!(a_relay_delivers_committed_changes_its_vocabulary_lacks, |db, conn| {
    install_vocabulary();
    let log = Log::new();
    conn.create_outbox().unwrap();
    // Recorded anyway under Warn where the change was made...
    let _: Customer = conn
        .audited()
        .outbox(true)
        .failure_mode(FailureMode::Warn)
        .action("customer.signnup")
        .insert(customers::table, new_customer("Ada", "free"))
        .unwrap();
    let _: Customer = conn
        .audited()
        .outbox(true)
        .insert(customers::table, new_customer("Bob", "free"))
        .unwrap();
    // ... so the relay (which emits fail-closed) delivers it rather than refusing it forever
    // and holding every later event behind it.
    let mut source = FileSource::open(log.path()).unwrap();
    assert_eq!(Relay::new().drain(&mut conn, &log.guard, &mut source).unwrap(), 2);
    let actions: Vec<String> = log.records().into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["customer.signnup", "customer.create"]);
    assert_eq!(audit_outbox::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    log.verify();
});
