//! Ingest throughput of the SQLite store (chained appends under `BEGIN IMMEDIATE`, with the
//! head re-read) against plain inserts of the same rows into the same table shape without
//! chaining, in the same run. Prints the ratio.

use std::time::{Duration, Instant};

use audit_runtime::query::Indexed;
use audit_runtime::store::event_batch;
use audit_runtime::store::{ChainBatch, ChainHead, Store};
use audit_runtime::{AuditEvent, Category, ChainHash, Timestamp};
use audit_sqlite::SqliteStore;
use criterion::{Criterion, Throughput};
use rusqlite::{Connection, params};

const BATCH: usize = 1000;

fn batch() -> ChainBatch {
    let events = (0..BATCH).map(|i| {
        AuditEvent::new("billing.update", Category::Mutation)
            .tenant("acme")
            .resource("invoice", format!("inv_{i}"))
            .context("request_id", format!("req_{i}"))
            .context("ip", "203.0.113.7")
    });
    event_batch("acme", events)
}

/// Pre-serialized rows: what the plain insert writes.
struct Plain {
    rows: Vec<(Indexed, Timestamp, ChainHash, String)>,
}

fn plain_rows() -> Plain {
    let mut b = batch();
    let mut head = ChainHead {
        chain: "acme".into(),
        seq: 0,
        hash: ChainHash::GENESIS,
        timestamp: Timestamp::from_unix_micros(0),
    };
    b.chain_onto(&mut head);
    let rows = b
        .records()
        .map(|(e, c, line)| {
            (
                Indexed::from_entry(e),
                c.timestamp,
                c.hash,
                String::from_utf8(line.to_vec()).unwrap(),
            )
        })
        .collect();
    Plain { rows }
}

fn plain_table(conn: &Connection) {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE plain (chain TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, tenant TEXT, action TEXT NOT NULL,
             category TEXT NOT NULL, actor_id TEXT NOT NULL, resource_type TEXT, resource_id TEXT, outcome TEXT NOT NULL,
             id TEXT NOT NULL, line TEXT NOT NULL, hash BLOB NOT NULL, prev_hash BLOB NOT NULL, PRIMARY KEY (chain, seq));
         CREATE INDEX plain_chain_ts ON plain (chain, ts, seq);
         CREATE INDEX plain_ts ON plain (ts, chain, seq);
         CREATE INDEX plain_actor ON plain (actor_id, ts);
         CREATE INDEX plain_resource ON plain (resource_type, resource_id, ts);",
    )
    .unwrap();
}

fn insert_plain(conn: &mut Connection, plain: &Plain, offset: &mut i64) {
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO plain (chain, seq, ts, tenant, action, category, actor_id, resource_type, resource_id, outcome, id,
                                    line, hash, prev_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .unwrap();
        for (ix, ts, hash, line) in &plain.rows {
            *offset += 1;
            // Time moves forward as in a live chain, so index inserts land at the end too.
            stmt.execute(params![
                "acme",
                *offset,
                ts.unix_micros() + *offset,
                ix.tenant,
                ix.action,
                ix.category.as_str(),
                ix.actor_id,
                ix.resource_type,
                ix.resource_id,
                ix.outcome.as_str(),
                ix.id.to_string(),
                line,
                &hash.0[..],
                &hash.0[..],
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("chained.db")).unwrap();
    let mut conn = Connection::open(dir.path().join("plain.db")).unwrap();
    plain_table(&conn);
    let mut b = batch();
    let plain = plain_rows();
    let mut head = ChainHead {
        chain: "acme".into(),
        seq: 0,
        hash: ChainHash::GENESIS,
        timestamp: Timestamp::from_unix_micros(0),
    };
    let mut offset = 0;

    // Paired rounds, alternating, so both sides see the same machine and table sizes.
    let (mut chained_t, mut plain_t) = (Duration::ZERO, Duration::ZERO);
    let rounds = 40;
    for _ in 0..rounds {
        let t = Instant::now();
        store.append(&mut b, &mut head).unwrap();
        chained_t += t.elapsed();
        let t = Instant::now();
        insert_plain(&mut conn, &plain, &mut offset);
        plain_t += t.elapsed();
    }
    let n = (rounds * BATCH) as f64;
    let (c, p) = (n / chained_t.as_secs_f64(), n / plain_t.as_secs_f64());
    println!(
        "sqlite ingest, batches of {BATCH}: chained {c:.0} events/s, plain insert {p:.0} events/s, ratio {:.1}%",
        100.0 * c / p
    );

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    let mut group = criterion.benchmark_group("sqlite_ingest");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("chained_append", |bench| {
        bench.iter(|| store.append(&mut b, &mut head).unwrap())
    });
    group.bench_function("plain_insert", |bench| {
        bench.iter(|| insert_plain(&mut conn, &plain, &mut offset))
    });
    group.finish();
    criterion.final_summary();
}
