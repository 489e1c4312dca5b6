//! Ingest throughput of the PostgreSQL store (advisory lock, head read, re-chaining, one
//! multi-row insert, the trigger that checks every row's hash, line and link) against plain
//! inserts of the same rows, without chaining, into a table of the same shape (partitioned,
//! the store's indexes copied, no triggers), in the same run: a multi-row `INSERT ... unnest`
//! and a binary `COPY`. Prints the ratios.
//!
//! Needs the server of `AUDIT_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); uses a fresh schema and drops it.

use std::time::{Duration, Instant};

use audit_postgres::{PgStore, RECORD_COLUMN_TYPES, RECORD_COLUMNS};
use audit_runtime::query::Indexed;
use audit_runtime::store::event_batch;
use audit_runtime::store::{ChainBatch, ChainHead, Store};
use audit_runtime::{AuditEvent, Category, ChainHash, Timestamp};
use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::{Client, NoTls};

fn batch(n: usize) -> ChainBatch {
    let events = (0..n).map(|i| {
        AuditEvent::new("billing.update", Category::Mutation)
            .tenant("acme")
            .resource("invoice", format!("inv_{i}"))
            .context("request_id", format!("req_{i}"))
            .context("ip", "203.0.113.7")
    });
    event_batch("acme", events)
}

/// The rows of a chained batch, as plain column values.
struct Plain {
    ix: Vec<Indexed>,
    ts: Vec<i64>,
    hash: Vec<Vec<u8>>,
    line: Vec<String>,
}

fn plain_rows(n: usize) -> Plain {
    let mut b = batch(n);
    let mut head = ChainHead {
        chain: "acme".into(),
        seq: 0,
        hash: ChainHash::GENESIS,
        timestamp: Timestamp::from_unix_micros(0),
    };
    b.chain_onto(&mut head);
    let mut p = Plain {
        ix: Vec::new(),
        ts: Vec::new(),
        hash: Vec::new(),
        line: Vec::new(),
    };
    for (e, c, line) in b.records() {
        p.ix.push(Indexed::from_entry(e));
        p.ts.push(c.timestamp.unix_micros());
        p.hash.push(c.hash.0.to_vec());
        p.line
            .push(String::from_utf8(line.strip_suffix(b"\n").unwrap().to_vec()).unwrap());
    }
    p
}

fn setup_plain(c: &mut Client, schema: &str) {
    c.batch_execute(&format!(
        "CREATE TABLE \"{schema}\".plain (LIKE \"{schema}\".audit_records INCLUDING DEFAULTS INCLUDING INDEXES)
             PARTITION BY RANGE (ts);
         CREATE TABLE \"{schema}\".plain_default PARTITION OF \"{schema}\".plain DEFAULT;"
    ))
    .unwrap();
}

fn ts_of(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap()
}

fn insert_plain(c: &mut Client, schema: &str, p: &Plain, offset: &mut i64) {
    let n = p.ix.len() as i64;
    let seq: Vec<i64> = (*offset + 1..=*offset + n).collect();
    // Time moves forward as in a live chain.
    let ts: Vec<DateTime<Utc>> = p.ts.iter().zip(&seq).map(|(t, s)| ts_of(t + s)).collect();
    *offset += n;
    let tenant: Vec<Option<&str>> = p.ix.iter().map(|i| i.tenant.as_deref()).collect();
    let action: Vec<&str> = p.ix.iter().map(|i| i.action.as_str()).collect();
    let category: Vec<&str> = p.ix.iter().map(|i| i.category.as_str()).collect();
    let actor: Vec<&str> = p.ix.iter().map(|i| i.actor_id.as_str()).collect();
    let rtype: Vec<Option<&str>> = p.ix.iter().map(|i| i.resource_type.as_deref()).collect();
    let rid: Vec<Option<&str>> = p.ix.iter().map(|i| i.resource_id.as_deref()).collect();
    let outcome: Vec<&str> = p.ix.iter().map(|i| i.outcome.as_str()).collect();
    let id: Vec<uuid::Uuid> = p.ix.iter().map(|i| i.id).collect();
    let mut tx = c.transaction().unwrap();
    tx.execute(
        &format!(
            "INSERT INTO \"{schema}\".plain (chain, seq, ts, tenant, action, category, actor_id, resource_type, resource_id,
                                            outcome, id, line, hash, prev_hash)
             SELECT 'acme', * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                                         $7::text[], $8::text[], $9::text[], $10::uuid[], $11::text[], $12::bytea[], $13::bytea[])"
        ),
        &[&seq, &ts, &tenant, &action, &category, &actor, &rtype, &rid, &outcome, &id, &p.line, &p.hash, &p.hash],
    )
    .unwrap();
    tx.commit().unwrap();
}

fn copy_plain(c: &mut Client, schema: &str, p: &Plain, offset: &mut i64) {
    let mut tx = c.transaction().unwrap();
    let sink = tx
        .copy_in(&format!("COPY \"{schema}\".plain ({RECORD_COLUMNS}) FROM STDIN BINARY"))
        .unwrap();
    let mut w = BinaryCopyInWriter::new(sink, &RECORD_COLUMN_TYPES);
    for k in 0..p.ix.len() {
        *offset += 1;
        let ix = &p.ix[k];
        w.write(&[
            &"acme",
            &*offset,
            &ts_of(p.ts[k] + *offset),
            &ix.tenant,
            &ix.action,
            &ix.category.as_str(),
            &ix.actor_id,
            &ix.resource_type,
            &ix.resource_id,
            &ix.outcome.as_str(),
            &ix.id,
            &p.line[k],
            &p.hash[k],
            &p.hash[k],
        ])
        .unwrap();
    }
    w.finish().unwrap();
    tx.commit().unwrap();
}

fn main() {
    let url = std::env::var("AUDIT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut admin = match Client::connect(&url, NoTls) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("*** SKIPPED: PostgreSQL is unreachable at {url}: {e}");
            return;
        }
    };
    let schema = format!("audit_bench_{}", uuid::Uuid::now_v7().simple());
    let mut store = PgStore::connect(&url, &schema).unwrap();
    setup_plain(&mut admin, &schema);
    let mut offset = 0;

    for size in [100usize, 1000] {
        let mut b = batch(size);
        let plain = plain_rows(size);
        let mut head = ChainHead {
            chain: "acme".into(),
            seq: 0,
            hash: ChainHash::GENESIS,
            timestamp: Timestamp::from_unix_micros(0),
        };
        let (mut chained_t, mut insert_t, mut copy_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let rounds = 40_000 / size;
        for _ in 0..rounds {
            let t = Instant::now();
            store.append(&mut b, &mut head).unwrap();
            chained_t += t.elapsed();
            let t = Instant::now();
            insert_plain(&mut admin, &schema, &plain, &mut offset);
            insert_t += t.elapsed();
            let t = Instant::now();
            copy_plain(&mut admin, &schema, &plain, &mut offset);
            copy_t += t.elapsed();
        }
        let n = (rounds * size) as f64;
        let rate = |d: Duration| n / d.as_secs_f64();
        let (c, i, k) = (rate(chained_t), rate(insert_t), rate(copy_t));
        println!(
            "postgres ingest, batches of {size}: chained {c:.0} events/s; plain INSERT {i:.0} events/s (ratio {:.1}%); \
             plain COPY {k:.0} events/s (ratio {:.1}%)",
            100.0 * c / i,
            100.0 * c / k
        );
    }

    let mut b = batch(1000);
    let plain = plain_rows(1000);
    let mut head = ChainHead {
        chain: "acme".into(),
        seq: 0,
        hash: ChainHash::GENESIS,
        timestamp: Timestamp::from_unix_micros(0),
    };
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    let mut group = criterion.benchmark_group("postgres_ingest_1000");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("chained_append", |bench| {
        bench.iter(|| store.append(&mut b, &mut head).unwrap())
    });
    group.bench_function("plain_insert", |bench| {
        bench.iter(|| insert_plain(&mut admin, &schema, &plain, &mut offset))
    });
    group.bench_function("plain_copy", |bench| {
        bench.iter(|| copy_plain(&mut admin, &schema, &plain, &mut offset))
    });
    group.finish();
    criterion.final_summary();
    drop(store);
    admin
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();
}
