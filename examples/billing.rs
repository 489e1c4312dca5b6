//! A small billing service on SQLite whose changes are audited with before/after state:
//! creates, updates, deletes, a rolled-back update and a bulk update, written to a JSONL audit
//! log and verified at the end.
//!
//! ```text
//! cargo run --example billing [-- DIR]     # DIR defaults to ./audit-log
//! ```

use std::path::PathBuf;

use audit::diesel::{AuditedExt, Change, Error};
use audit::{Actor, AuditLayer, AuditModel, AuditScope, AuthMethod, FileStore};
use diesel::prelude::*;
use tracing_subscriber::prelude::*;

/// The database schema (diesel's generated items).
#[allow(missing_docs)]
mod schema {
    diesel::table! {
        customers (id) {
            id -> BigInt,
            name -> Text,
            plan -> Text,
            card_number -> Text,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        invoices (id) {
            id -> BigInt,
            customer_id -> BigInt,
            amount_cents -> BigInt,
            status -> Text,
        }
    }
}
use schema::{customers, invoices};

/// A customer; the card number never reaches the audit log.
#[derive(Queryable, Selectable, AuditModel, Debug)]
#[diesel(table_name = customers)]
#[audit(resource = "customer")]
struct Customer {
    id: i64,
    name: String,
    plan: String,
    // Only ever written as a keyed fingerprint: a change shows, the number never does.
    #[allow(dead_code)]
    #[audit(redact)]
    card_number: String,
    updated_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = customers)]
struct NewCustomer<'a> {
    name: &'a str,
    plan: &'a str,
    card_number: &'a str,
    updated_at: i64,
}

/// An invoice.
#[derive(Queryable, Selectable, AuditModel, Debug)]
#[diesel(table_name = invoices)]
#[audit(resource = "invoice")]
struct Invoice {
    id: i64,
    customer_id: i64,
    amount_cents: i64,
    status: String,
}

#[derive(Insertable)]
#[diesel(table_name = invoices)]
struct NewInvoice<'a> {
    customer_id: i64,
    amount_cents: i64,
    status: &'a str,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log_dir: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(|| "audit-log".into(), PathBuf::from);
    let (layer, guard) = AuditLayer::builder(FileStore::open(&log_dir)?)
        .vocabulary(audit::vocabulary!())
        .build()?;
    tracing_subscriber::registry().with(layer).init();

    let db_dir = tempfile::tempdir()?;
    let mut conn = SqliteConnection::establish(db_dir.path().join("billing.db").to_str().ok_or("path")?)?;
    for ddl in [
        "PRAGMA journal_mode = WAL",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL, \
         card_number TEXT NOT NULL, updated_at BIGINT NOT NULL)",
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id BIGINT NOT NULL REFERENCES customers(id), \
         amount_cents BIGINT NOT NULL, status TEXT NOT NULL)",
    ] {
        diesel::sql_query(ddl).execute(&mut conn)?;
    }

    // Per request, typically set by middleware: who acts, for which tenant, from where.
    let scope = AuditScope::new()
        .actor(Actor::user("usr_admin", AuthMethod::Sso).with_name("Billing admin"))
        .tenant("acme")
        .context("ip", "203.0.113.7")
        .context("request_id", "req_billing_1");
    let mut db = conn.audited().ignore(&["updated_at"]);
    scope.in_scope(|| -> Result<(), Error> {
        // Sign-up: a customer and two draft invoices, committed together.
        let (ada, draft) = db.transaction(|tx| {
            let ada: Customer = tx.action(audit::action!("customer.create")).insert(
                customers::table,
                NewCustomer {
                    name: "Ada",
                    plan: "free",
                    card_number: "4111111111111111",
                    updated_at: now(),
                },
            )?;
            let drafts: Vec<Invoice> = tx.insert_all(
                invoices::table,
                [10_000, 25_000].map(|amount_cents| NewInvoice {
                    customer_id: ada.id,
                    amount_cents,
                    status: "draft",
                }),
            )?;
            Ok::<_, Error>((ada, drafts))
        })?;
        println!(
            "created customer {} with invoices {:?}",
            ada.id,
            draft.iter().map(|i| i.id).collect::<Vec<_>>()
        );

        // Upgrade: one audited update, recorded as billing.update with the changed fields.
        let upgrade: Change<Customer> = db.action(audit::action!("billing.update")).update(
            customers::table.find(ada.id),
            (customers::plan.eq("pro"), customers::updated_at.eq(now())),
        )?;
        println!("upgraded: changed {:?}", upgrade.changed);

        // A rolled-back change: the card update fails validation after the write, inside the
        // transaction, so neither the change nor its event survives.
        let rejected: Result<(), Error> = db.transaction(|tx| {
            tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::card_number.eq("not-a-card"))?;
            Err(Error::NotFound {
                operation: "validate card",
                table: "customers".into(),
            })
        });
        println!("card update rolled back: {}", rejected.is_err());

        // Bulk: send every draft invoice, one event per invoice.
        let sent: Vec<Change<Invoice>> = db.action(audit::action!("invoice.send")).update_all(
            invoices::table.filter(invoices::status.eq("draft")),
            invoices::status.eq("sent"),
        )?;
        println!("sent {} invoices", sent.len());

        // Delete: the smaller invoice is voided.
        let voided: Invoice = db
            .action(audit::action!("invoice.delete"))
            .delete(invoices::table.find(draft[0].id))?;
        println!("deleted invoice {} ({} cents)", voided.id, voided.amount_cents);
        Ok(())
    })?;

    guard.shutdown()?; // drains, syncs and seals
    let report = audit::verify::verify_paths(&[&log_dir], &Default::default())?;
    for damage in report.damages() {
        eprintln!("DAMAGE: {damage}");
    }
    if !report.is_ok() {
        return Err("the audit log does not verify".into());
    }
    for chain in &report.chains {
        println!("chain {:?}: {} events verified", chain.chain, chain.count);
    }
    println!("audit log in {}", log_dir.display());
    Ok(())
}
