//! Temporary timing probe (not part of the crate).
#![allow(missing_docs)]
use std::time::Instant;

use audit::AuditModel;
use audit_diesel::{AuditedExt, Change};
use audit_runtime::{AuditLayer, FileStore};
use diesel::prelude::*;
use tracing_subscriber::prelude::*;

diesel::table! {
    customers (id) {
        id -> BigInt,
        name -> Text,
        plan -> Text,
        ssn -> Text,
        balance -> BigInt,
    }
}

#[derive(Queryable, Selectable, AuditModel)]
#[diesel(table_name = customers)]
#[audit(resource = "customer")]
#[allow(dead_code)]
struct Customer {
    id: i64,
    name: String,
    plan: String,
    #[audit(redact)]
    ssn: String,
    balance: i64,
}

fn time(label: &str, n: u32, mut f: impl FnMut()) {
    if let Ok(only) = std::env::var("ONLY") {
        if only != label {
            return;
        }
    }
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    println!("{label:40} {:8.2} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}

fn main() {
    let log = tempfile::tempdir().unwrap();
    let (layer, _guard) = AuditLayer::builder(FileStore::open(log.path()).unwrap()).build().unwrap();
    let _default = tracing_subscriber::registry().with(layer).set_default();
    let dir = tempfile::tempdir().unwrap();
    let mut c = SqliteConnection::establish(dir.path().join("b.db").to_str().unwrap()).unwrap();
    for sql in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL, ssn TEXT NOT NULL, balance BIGINT NOT NULL)",
        "INSERT INTO customers VALUES (1, 'a', 'one', 'x', 0)",
    ] {
        diesel::sql_query(sql).execute(&mut c).unwrap();
    }
    let n = 20000;
    for round in 0..2 {
        println!("round {round}");
        time("plain", n, || {
            diesel::update(customers::table.find(1)).set(customers::balance.eq(customers::balance + 1)).execute(&mut c).unwrap();
        });
        time("immediate tx + plain", n, || {
            c.immediate_transaction(|c| {
                diesel::update(customers::table.find(1)).set(customers::balance.eq(customers::balance + 1)).execute(c)
            })
            .unwrap();
        });
        time("immediate tx + select + update returning", n, || {
            c.immediate_transaction(|c| {
                let _b: Vec<Customer> = customers::table.find(1).select(Customer::as_select()).limit(2).load(c)?;
                let _a: Vec<Customer> = diesel::update(customers::table.find(1))
                    .set(customers::balance.eq(customers::balance + 1))
                    .returning(Customer::as_returning())
                    .load(c)?;
                QueryResult::Ok(())
            })
            .unwrap();
        });
        time("immediate tx + select + plain", n, || {
            c.immediate_transaction(|c| {
                let _b: Vec<Customer> = customers::table.find(1).select(Customer::as_select()).limit(2).load(c)?;
                diesel::update(customers::table.find(1)).set(customers::balance.eq(customers::balance + 1)).execute(c)
            })
            .unwrap();
        });
        time("immediate tx + update returning", n, || {
            c.immediate_transaction(|c| {
                let _a: Vec<Customer> = diesel::update(customers::table.find(1))
                    .set(customers::balance.eq(customers::balance + 1))
                    .returning(Customer::as_returning())
                    .load(c)?;
                QueryResult::Ok(())
            })
            .unwrap();
        });
        time("select only", n, || {
            let _b: Vec<Customer> = customers::table.find(1).select(Customer::as_select()).limit(2).load(&mut c).unwrap();
        });
        time("audited", n, || {
            let _ch: Change<Customer> = c
                .audited()
                .update(customers::table.find(1), customers::balance.eq(customers::balance + 1))
                .unwrap();
        });
    }
}
