//! Query cost against store size: loads real chained records with `COPY` (the chain-check
//! trigger validates every statement) in two steps, 1M then 10M rows by default, with the
//! same number of records per tenant and day, and after each step prints the plan
//! (`EXPLAIN ANALYZE`) and the time of one tenant's day, oldest and newest first.
//!
//! ```text
//! cargo run --release -p audit-postgres --example query_plan -- [TENANTS_STEP1 [TENANTS_STEP2 [PER_DAY]]]
//! ```
//! Defaults: 100 and 1000 tenants, 27 records per tenant and day, over 365 days (986k and
//! 9.86M rows). Uses `AUDIT_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and a fresh schema, dropped at the end unless
//! `KEEP_SCHEMA=1`.

use std::time::{Duration, Instant};

use audit_postgres::{PgStore, RECORD_COLUMN_TYPES, RECORD_COLUMNS, page_sql};
use audit_runtime::query::{Indexed, Order, Query, RecordSource};
use audit_runtime::store::ChainHead;
use audit_runtime::store::event_batch;
use audit_runtime::{Actor, AuditEvent, AuthMethod, Category, ChainHash, Timestamp};
use chrono::{DateTime, Utc};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::ToSql;
use postgres::{Client, NoTls};

const DAYS: i64 = 365;
const DAY: i64 = 86_400_000_000;

fn arg(n: usize, default: usize) -> usize {
    std::env::args().nth(n).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let url = std::env::var("AUDIT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let (step1, step2, per_day) = (arg(1, 100), arg(2, 1000), arg(3, 27));
    let schema = format!("audit_plan_{}", uuid::Uuid::now_v7().simple());
    let mut store = PgStore::connect(&url, &schema).expect("connect");
    let mut admin = Client::connect(&url, NoTls).expect("connect");
    let start = Timestamp::parse("2025-01-01").unwrap().unix_micros();
    let mut heads: Vec<ChainHead> = Vec::new();
    let mut loaded = 0;
    for tenants in [step1, step2] {
        let t = Instant::now();
        load(&mut admin, &schema, &mut heads, tenants, per_day, start);
        loaded = heads.iter().map(|h| h.seq).sum::<u64>();
        admin
            .batch_execute(&format!("VACUUM ANALYZE \"{schema}\".audit_records"))
            .unwrap();
        println!(
            "\n## {loaded} rows ({tenants} tenants × {DAYS} days × {per_day}), loaded in {:.0?}\n",
            t.elapsed()
        );
        let day = Timestamp::from_unix_micros(start + 200 * DAY);
        let next = Timestamp::from_unix_micros(start + 201 * DAY);
        for (what, q) in [
            (
                "one tenant, one day, oldest first",
                Query::new().tenant("tenant_00042").between(day, next),
            ),
            (
                "one tenant, one day, newest first, action prefix",
                Query::new()
                    .tenant("tenant_00042")
                    .between(day, next)
                    .order(Order::NewestFirst)
                    .action("billing.*"),
            ),
        ] {
            let (sql, args) = page_sql(&schema, &q, None, 1000);
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref()).collect();
            let plan = admin
                .query(&format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"), &refs)
                .unwrap();
            println!("### {what}\n```");
            for row in plan {
                println!("{}", row.get::<_, String>(0));
            }
            println!("```");
            let mut times: Vec<Duration> = Vec::new();
            let mut count = 0;
            for _ in 0..30 {
                let t = Instant::now();
                count = store.query(&q).unwrap().count();
                times.push(t.elapsed());
            }
            times.sort();
            println!(
                "{count} records through `RecordSource::query`: median {:.2?}, p90 {:.2?} (30 runs)\n",
                times[15], times[27]
            );
        }
    }
    println!("total rows: {loaded}");
    if std::env::var("KEEP_SCHEMA").is_err() {
        admin
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .unwrap();
    }
}

/// Adds tenants up to `tenants`, day by day, one `COPY` per day.
fn load(admin: &mut Client, schema: &str, heads: &mut Vec<ChainHead>, tenants: usize, per_day: usize, start: i64) {
    let first_new = heads.len();
    for t in first_new..tenants {
        heads.push(ChainHead {
            chain: format!("tenant_{t:05}"),
            seq: 0,
            hash: ChainHash::GENESIS,
            timestamp: Timestamp::from_unix_micros(i64::MIN),
        });
    }
    for m in 0..14 {
        let date = chrono::NaiveDate::from_ymd_opt(2025 + m / 12, (m % 12) as u32 + 1, 1).unwrap();
        admin
            .execute(&format!("SELECT \"{schema}\".audit_create_partition($1)"), &[&date])
            .unwrap();
    }
    const ACTIONS: [(&str, Category); 4] = [
        ("billing.update", Category::Mutation),
        ("user.login", Category::Authentication),
        ("customer_record.read", Category::DataAccess),
        ("billing.card.update", Category::Mutation),
    ];
    for day in 0..DAYS {
        let mut tx = admin.transaction().unwrap();
        let sink = tx
            .copy_in(&format!(
                "COPY \"{schema}\".audit_records ({RECORD_COLUMNS}) FROM STDIN BINARY"
            ))
            .unwrap();
        let mut w = BinaryCopyInWriter::new(sink, &RECORD_COLUMN_TYPES);
        for head in heads[first_new..].iter_mut() {
            let events = (0..per_day).map(|k| {
                let at = start + day * DAY + (k as i64) * (DAY / per_day as i64) + (head.seq as i64 % 997);
                let (action, category) = ACTIONS[k % ACTIONS.len()];
                AuditEvent::new(action, category)
                    .tenant(head.chain.clone())
                    .actor(Actor::user(format!("usr_{}", k % 17), AuthMethod::Sso))
                    .resource("invoice", format!("inv_{}", (day as usize * per_day + k) % 5000))
                    .context("ip", "203.0.113.7")
                    .context("request_id", format!("req_{day}_{k}"))
                    .at(Timestamp::from_unix_micros(at))
            });
            let chain = head.chain.clone();
            let mut batch = event_batch(&chain, events);
            let mut prev = head.hash;
            batch.chain_onto(head);
            for (e, c, line) in batch.records() {
                let ix = Indexed::from_entry(e);
                let line = std::str::from_utf8(line.strip_suffix(b"\n").unwrap()).unwrap();
                let ts: DateTime<Utc> = DateTime::from_timestamp_micros(c.timestamp.unix_micros()).unwrap();
                w.write(&[
                    &chain,
                    &(c.seq as i64),
                    &ts,
                    &ix.tenant,
                    &ix.action,
                    &ix.category.as_str(),
                    &ix.actor_id,
                    &ix.resource_type,
                    &ix.resource_id,
                    &ix.outcome.as_str(),
                    &ix.id,
                    &line,
                    &&c.hash.0[..],
                    &&prev.0[..],
                ])
                .unwrap();
                prev = c.hash;
            }
        }
        w.finish().unwrap();
        tx.commit().unwrap();
    }
}
