//! PostgreSQL specifics: several writer processes, roles, triggers that hold even for the
//! owner, the chain check, partitions and the purge function, migrations.

mod common;

use std::process::Command;
use std::time::Duration;

use audit_postgres::PgStore;
use audit_runtime::query::{Query, RecordSource, verify_source};
use audit_runtime::retention::{Policy, RetentionConfig, RetentionTarget, record_into, run};
use audit_runtime::{AuditEvent, AuditLayer, Category, Timestamp};
use audit_store_tests::{sample_event, write_through_layer};
use common::{TestDb, message};
use tracing_subscriber::prelude::*;

const CHILD_SCHEMA: &str = "AUDIT_PG_CHILD_SCHEMA";
const CHILD_ID: &str = "AUDIT_PG_CHILD_ID";
const CHILD_START: &str = "AUDIT_PG_CHILD_START_MS";
const WRITERS: usize = 4;
const EVENTS_PER_WRITER: usize = 600;

/// Not a test of its own: the body of each writer process that
/// `several_writer_processes_keep_chains_gap_free` starts (it re-runs this binary).
#[test]
fn child_writer_process() {
    let (Ok(schema), Ok(id)) = (std::env::var(CHILD_SCHEMA), std::env::var(CHILD_ID)) else {
        return;
    };
    let store = PgStore::connect(&common::database_url(), &schema).expect("child connects");
    // Start together, so that the processes really contend for the shared chain.
    let start: u128 = std::env::var(CHILD_START)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    std::thread::sleep(Duration::from_millis(start.saturating_sub(now) as u64));
    let (layer, guard) = AuditLayer::builder(store)
        .commit_interval(Duration::from_millis(1))
        .build()
        .expect("writer");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..EVENTS_PER_WRITER {
            // Half on the chain every process shares, half on its own; bursts interleave the
            // processes' batches.
            let tenant = if i % 2 == 0 {
                "shared".to_owned()
            } else {
                format!("own{id}")
            };
            AuditEvent::new("user.login", Category::Authentication)
                .tenant(tenant)
                .context("request_id", format!("w{id}-{i}"))
                .emit()
                .expect("delivered");
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    guard.shutdown().expect("clean shutdown");
}

#[test]
fn several_writer_processes_keep_chains_gap_free() {
    let Some(db) = TestDb::new() else { return };
    drop(db.store()); // migrate once before the children race
    let exe = std::env::current_exe().unwrap();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    let children: Vec<_> = (0..WRITERS)
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", "child_writer_process", "--nocapture", "--test-threads=1"])
                .env(CHILD_SCHEMA, &db.schema)
                .env(CHILD_ID, id.to_string())
                .env(CHILD_START, start.to_string())
                // Keep the children's own test summaries out of this run's output.
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start a writer process")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a writer process failed");
    }
    let mut store = db.store();
    let report = verify_source(&mut store, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    let shared = report.chains.iter().find(|c| c.chain == "shared").unwrap();
    assert_eq!(
        (shared.first_seq, shared.last_seq, shared.count),
        (
            1,
            (WRITERS * EVENTS_PER_WRITER / 2) as u64,
            (WRITERS * EVENTS_PER_WRITER / 2) as u64
        )
    );
    for id in 0..WRITERS {
        let own = report.chains.iter().find(|c| c.chain == format!("own{id}")).unwrap();
        assert_eq!(own.count, (EVENTS_PER_WRITER / 2) as u64);
    }
    // Every process's events made it, none twice.
    let shared_records: Vec<_> = store
        .query(&Query::new().tenant("shared"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut ids: Vec<String> = shared_records
        .iter()
        .map(|r| {
            audit_runtime::Record::parse(&r.line)
                .unwrap()
                .context
                .unwrap()
                .request_id
                .unwrap()
        })
        .collect();
    // Along the shared chain, how often the writing process changes: more than once per
    // process means their appends really interleaved (and were re-chained under the lock).
    let switches = ids
        .windows(2)
        .filter(|w| w[0].split('-').next() != w[1].split('-').next())
        .count();
    eprintln!("the shared chain switched between writer processes {switches} times");
    assert!(
        switches >= WRITERS,
        "the writers did not run concurrently ({switches} switches)"
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), WRITERS * EVENTS_PER_WRITER / 2);
}

#[test]
fn stale_heads_are_rechained_under_the_lock() {
    let Some(db) = TestDb::new() else { return };
    drop(db.store());
    // Eight connections append to one chain, each always believing it is empty.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (url, schema) = (db.url.clone(), db.schema.clone());
            std::thread::spawn(move || {
                let mut store = PgStore::connect(&url, &schema).unwrap();
                for i in 0..25 {
                    let events = (0..3).map(|k| sample_event(t * 100 + i * 3 + k, Some("hot"), Timestamp::now()));
                    let mut batch = audit_runtime::store::event_batch("hot", events);
                    let mut stale = audit_runtime::ChainHead {
                        chain: "hot".into(),
                        seq: 0,
                        hash: audit_runtime::ChainHash::GENESIS,
                        timestamp: Timestamp::from_unix_micros(0),
                    };
                    audit_runtime::store::Store::append(&mut store, &mut batch, &mut stale).unwrap();
                    assert!(stale.seq >= 3, "the head handed back is the real one");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = verify_source(&mut db.store(), &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert_eq!((report.chains[0].count, report.chains[0].last_seq), (600, 600));
}

#[test]
fn application_and_retention_roles_work_within_their_rights() {
    let Some(mut db) = TestDb::new() else { return };
    let (_owner, app, retention) = db.roles();
    let now = Timestamp::now();
    let ago = |days: i64| Timestamp::from_unix_micros(now.unix_micros() - days * 86_400_000_000);
    // The owner brings an old record in (the application may not create its month's
    // partition); the application writes (creating this month's partition through the
    // function) and reads.
    audit_runtime::store::append_events(&mut db.store(), [sample_event(0, Some("acme"), ago(800))]).unwrap();
    write_through_layer(db.store_as(&app), vec![sample_event(1, Some("acme"), ago(3))]);
    let mut reader = db.store_as(&app);
    assert!(verify_source(&mut reader, &Default::default()).unwrap().is_ok());
    assert_eq!(reader.query(&Query::new().tenant("acme")).unwrap().count(), 2);
    // Retention plans and purges as its own role; its event goes in as the application's.
    let mut target = db.store_as(&retention);
    let config = RetentionConfig::new(Policy::soc2());
    let mut writer = db.store_as(&app);
    let outcome = run(&mut target, &config, now, false, &mut record_into(&mut writer)).unwrap();
    assert_eq!(outcome.units_removed.len(), 1, "{outcome:#?}");
    let report = verify_source(&mut reader, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert_eq!(report.chains[0].first_seq, 2);
    // The retention role cannot edit rows either.
    let mut c = db.client_as(&retention);
    for sql in [
        "UPDATE {s}.audit_records SET action = 'x'",
        "DELETE FROM {s}.audit_records",
        "TRUNCATE {s}.audit_records",
    ] {
        let sql = sql.replace("{s}", &format!("\"{}\"", db.schema));
        assert!(c.batch_execute(&sql).is_err(), "retention role may run {sql}");
    }
}

#[test]
fn triggers_refuse_edits_even_by_the_owner() {
    let Some(mut db) = TestDb::new() else { return };
    write_through_layer(
        db.store(),
        vec![
            sample_event(0, Some("acme"), Timestamp::now()),
            sample_event(1, Some("acme"), Timestamp::now()),
        ],
    );
    let s = db.schema.clone();
    let part = db.store().partition_names().unwrap().remove(0);
    for sql in [
        format!("UPDATE \"{s}\".audit_records SET action = 'x'"),
        format!("DELETE FROM \"{s}\".audit_records"),
        format!("TRUNCATE \"{s}\".audit_records"),
        format!("TRUNCATE \"{s}\".\"{part}\""),
        format!("DELETE FROM \"{s}\".\"{part}\""),
        format!("UPDATE \"{s}\".audit_seals SET seq = 0"),
        format!("TRUNCATE \"{s}\".audit_seals"),
        format!("DELETE FROM \"{s}\".audit_heads"),
    ] {
        let e = db.admin.batch_execute(&sql).expect_err(&sql);
        assert!(message(&e).contains("append-only"), "{sql}: {}", message(&e));
    }
}

#[test]
fn chain_check_rejects_inserts_that_break_the_chain() {
    let Some(mut db) = TestDb::new() else { return };
    write_through_layer(
        db.store(),
        vec![
            sample_event(0, Some("acme"), Timestamp::now()),
            sample_event(1, Some("acme"), Timestamp::now()),
        ],
    );
    let s = db.schema.clone();
    // Copy an existing row under another seq / time: a gap, a duplicate seq, a broken link.
    let copy_row = |seq: &str, ts: &str, prev: &str| {
        format!(
            "INSERT INTO \"{s}\".audit_records SELECT chain, {seq}, {ts}, tenant, action, category, actor_id, resource_type,
                 resource_id, outcome, id, line, hash, {prev} FROM \"{s}\".audit_records WHERE chain = 'acme' AND seq = 2"
        )
    };
    for (what, sql) in [
        ("gap", copy_row("4", "ts", "hash")),
        ("duplicate seq", copy_row("2", "ts + interval '1 second'", "prev_hash")),
        ("broken link", copy_row("3", "ts", "prev_hash")),
        (
            "new chain not from seq 1",
            format!(
                "INSERT INTO \"{s}\".audit_records SELECT 'other', 5, ts, tenant, action, category, actor_id, resource_type, resource_id, outcome, id, line, hash, prev_hash FROM \"{s}\".audit_records WHERE seq = 1"
            ),
        ),
    ] {
        let e = db.admin.batch_execute(&sql).expect_err(what);
        assert!(message(&e).contains("does not"), "{what}: {}", message(&e));
    }
    assert!(verify_source(&mut db.store(), &Default::default()).unwrap().is_ok());
}

#[test]
fn purge_function_takes_only_the_oldest_finished_month() {
    let Some(mut db) = TestDb::new() else { return };
    let now = Timestamp::now();
    let ago = |days: i64| Timestamp::from_unix_micros(now.unix_micros() - days * 86_400_000_000);
    let events = vec![
        sample_event(0, Some("acme"), ago(400)),
        sample_event(1, Some("acme"), ago(200)),
        sample_event(2, Some("acme"), now),
    ];
    let mut store = db.store();
    audit_runtime::store::append_events(&mut store, events).unwrap();
    let parts = store.partition_names().unwrap();
    assert_eq!(parts.len(), 3, "one partition per month used: {parts:?}");
    let s = db.schema.clone();
    let purge = |part: &str| format!("SELECT * FROM \"{s}\".audit_purge_partition('{part}')");
    let e = db.admin.batch_execute(&purge(&parts[1])).unwrap_err();
    assert!(message(&e).contains("only the oldest"), "{}", message(&e));
    let rows = db.admin.query(&purge(&parts[0]), &[]).unwrap();
    assert_eq!(rows.len(), 1, "one purge seal, for acme");
    db.admin.batch_execute(&purge(&parts[1])).unwrap();
    let e = db.admin.batch_execute(&purge(&parts[2])).unwrap_err();
    assert!(message(&e).contains("still receives"), "{}", message(&e));
    let report = verify_source(&mut store, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert_eq!((report.chains[0].first_seq, report.chains[0].last_seq), (3, 3));
    // A legal hold keeps everything, and the dry run says why.
    let plan = store
        .plan(&RetentionConfig::new(Policy::days("short", 1)).hold("acme"), now)
        .unwrap();
    assert!(plan.units.is_empty());
}

#[test]
fn migrations_are_versioned_idempotent_and_race_free() {
    let Some(mut db) = TestDb::new() else { return };
    let owner_url = common::url_with_role(&db.url, &db.owner());
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (url, schema) = (owner_url.clone(), db.schema.clone());
            std::thread::spawn(move || PgStore::connect(&url, &schema).map(drop))
        })
        .collect();
    for t in threads {
        t.join().unwrap().expect("concurrent first connections migrate once");
    }
    drop(db.store());
    let versions: Vec<i32> = db
        .admin
        .query(
            &format!("SELECT version FROM \"{}\".audit_schema_version", db.schema),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [audit_postgres::SCHEMA_VERSION]);
    assert!(PgStore::connect_url(&format!("{}?schema={}", db.url, db.schema)).is_ok());
}
