//! Regression tests of the hardening issue's PostgreSQL findings, each named after its
//! finding and reproducing the attack as it was reported.

mod common;

use audit_postgres::PgStore;
use audit_runtime::copy::{CopyOptions, copy};
use audit_runtime::query::{Indexed, Query, RecordSource, StoredRecord, verify_source};
use audit_runtime::store::{ChainHead, SetAside, Store, event_batch};
use audit_runtime::{
    Actor, AuditEvent, AuditLayer, AuthMethod, Category, FileSource, FileStore, StoreError, Timestamp,
};
use audit_store_tests::all_records;
use chrono::{DateTime, Utc};
use common::{TestDb, message};
use postgres::Client;
use tracing_subscriber::prelude::*;

/// A chain key, a resource id and an actor id holding U+0000 and backslashes.
const NUL_TENANT: &str = "ac\0me\\0";
const NUL_RESOURCE: &str = "inv\0_1";
const NUL_ACTOR: &str = "usr\\\0x";

fn nul_events(n: usize) -> Vec<AuditEvent> {
    (0..n)
        .map(|i| {
            let e = AuditEvent::new("billing.update", Category::Mutation).context("request_id", format!("req_{i}"));
            match i % 4 {
                0 => e.tenant("acme").resource("invoice", NUL_RESOURCE),
                1 => e.tenant(NUL_TENANT).resource("invoice", format!("inv_{i}")),
                2 => e
                    .tenant("acme")
                    .actor(Actor::user(NUL_ACTOR, AuthMethod::Sso))
                    .resource("in\0voice", "x"),
                _ => AuditEvent::new("billing.up\0date", Category::Mutation).tenant("acme"),
            }
        })
        .collect()
}

fn records_of(store: &mut PgStore, q: &Query) -> Vec<StoredRecord> {
    store.query(q).unwrap().collect::<Result<_, _>>().unwrap()
}

/// Finding 1: an event with `\0` in `resource.id` (or any indexed member) wedged the writer:
/// PostgreSQL's `text` refuses U+0000, so the batch failed again and again while `emit()`
/// kept returning `Ok`. Every event must be stored, queryable by its members, and verify.
#[test]
fn one_nul_byte_wedges_the_postgresql_writer_for_good() {
    let Some(db) = TestDb::new() else { return };
    const N: usize = 400;
    let undelivered = audit_runtime::undelivered_count();
    let (layer, guard) = AuditLayer::builder(db.store()).build().expect("writer");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for e in nul_events(N) {
            e.emit().expect("emit");
        }
    });
    guard.shutdown().expect("every event written");
    assert_eq!(audit_runtime::undelivered_count(), undelivered, "no event undelivered");

    let mut store = db.store();
    let report = verify_source(&mut store, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert_eq!(all_records(&mut store).len(), N, "every event stored");
    let mut chains = store.chains().unwrap();
    chains.sort();
    assert_eq!(chains, [NUL_TENANT, "acme"], "chain names read back as written");
    let heads = store.heads().unwrap();
    let head = heads
        .iter()
        .find(|h| h.chain == NUL_TENANT)
        .expect("the NUL chain's head");
    assert_eq!(head.seq, (N / 4) as u64);

    // Every filter takes the value as the event had it.
    let by_tenant = records_of(&mut store, &Query::new().tenant(NUL_TENANT));
    assert_eq!(by_tenant.len(), N / 4);
    assert!(by_tenant.iter().all(|r| r.chain == NUL_TENANT));
    assert_eq!(
        records_of(&mut store, &Query::new().resource("invoice", NUL_RESOURCE)).len(),
        N / 4
    );
    assert_eq!(records_of(&mut store, &Query::new().actor(NUL_ACTOR)).len(), N / 4);
    assert_eq!(
        records_of(&mut store, &Query::new().resource("in\0voice", "x")).len(),
        N / 4
    );
    assert_eq!(
        records_of(&mut store, &Query::new().action("billing.up\0date")).len(),
        N / 4
    );
    assert_eq!(records_of(&mut store, &Query::new().action("billing.*")).len(), N);
    assert_eq!(records_of(&mut store, &Query::new().action("billing.up\0*")).len(), 0);
    // The chain's records read chain by chain, and a page cursor on the NUL chain resumes.
    assert_eq!(store.chain_records(NUL_TENANT, 0).unwrap().count(), N / 4);
    let first = records_of(&mut store, &Query::new().tenant(NUL_TENANT).limit(7));
    let cursor = audit_runtime::query::Cursor::after(first.last().unwrap());
    let rest = records_of(&mut store, &Query::new().tenant(NUL_TENANT).after(cursor));
    assert_eq!(first.len() + rest.len(), N / 4);
}

/// Finding 1, the neighbours of U+0000: values whose JSON holds escapes that look like it
/// (a literal `\u0000`, backslashes before `0`), other control characters, quotes and
/// non-ASCII, in every indexed member, go in and come back by every filter.
#[test]
fn one_nul_byte_wedges_the_postgresql_writer_for_good_lookalikes() {
    let Some(db) = TestDb::new() else { return };
    let odd = [
        "lit\\u0000eral",
        "\\\\0\\0\0\\",
        "ctl\n\t\u{1f}\u{7f}",
        "q\"uo\"te/é✓",
        "\u{2028}\\\"\0",
    ];
    let events: Vec<AuditEvent> = odd
        .iter()
        .map(|v| {
            AuditEvent::new(format!("odd.{v}"), Category::Admin)
                .tenant(*v)
                .actor(Actor::service(*v, AuthMethod::ApiKey))
                .resource(format!("t{v}"), v)
                .failure(*v)
        })
        .collect();
    let mut store = db.store();
    audit_runtime::store::append_events(&mut store, events).expect("every value goes in");
    for v in odd {
        for q in [
            Query::new().tenant(v),
            Query::new().actor(v),
            Query::new().resource(format!("t{v}"), v),
            Query::new().action(format!("odd.{v}")),
        ] {
            let found = records_of(&mut store, &q);
            assert_eq!(found.len(), 1, "{v:?} by {q:?}");
            assert_eq!(found[0].chain, v);
        }
    }
    assert_eq!(records_of(&mut store, &Query::new().action("odd.*")).len(), odd.len());
    let mut chains = store.chains().unwrap();
    chains.sort();
    let mut expected: Vec<String> = odd.iter().map(|v| v.to_string()).collect();
    expected.sort();
    assert_eq!(chains, expected);
    let report = verify_source(&mut store, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
}

/// Finding 1, the copy half: `audit copy` of a file store holding such a record into
/// PostgreSQL failed mid-copy (`invalid byte sequence for encoding "UTF8": 0x00`).
#[test]
fn one_nul_byte_wedges_the_postgresql_writer_for_good_in_copy() {
    let Some(db) = TestDb::new() else { return };
    let files = tempfile::tempdir().unwrap();
    audit_store_tests::write_through_layer(FileStore::open(files.path()).unwrap(), nul_events(40));
    let mut source = FileSource::open(files.path()).unwrap();
    let mut sink = db.store();
    let report = copy(&mut source, &mut sink, &CopyOptions::default()).expect("copy");
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.copied(), 40);
    assert_eq!(
        copy(&mut source, &mut sink, &CopyOptions::default()).unwrap().copied(),
        0,
        "a second copy finds every chain's head"
    );
    drop(sink);
    let mut store = db.store();
    assert_eq!(all_records(&mut store), all_records(&mut source), "byte for byte");
    let report = verify_source(&mut store, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert!(
        report.chains.iter().all(|c| c.sealed_through == Some(c.last_seq)),
        "seals of the NUL chain copied too: {report:#?}"
    );
}

/// Finding 1, what is left: a record the database refuses for its content is reported as
/// [`StoreError::Rejected`] naming its chain and seqs (so the writer sets it aside and goes
/// on), not as an I/O failure to retry for ever; nothing of the refused batch goes in.
#[test]
fn one_nul_byte_wedges_the_postgresql_writer_for_good_refusals_are_rejections() {
    let Some(mut db) = TestDb::new() else { return };
    let (_, app, _) = db.roles();
    let mut store = db.store();
    let login = || AuditEvent::new("user.login", Category::Authentication).tenant("acme");
    audit_runtime::store::append_events(&mut store, [login()]).unwrap();
    let head = store.heads().unwrap().remove(0);
    // A record whose time is not its line's (a damaged source): the database's content check.
    let mut record = chained_record(&head, login());
    record.timestamp = Timestamp::from_unix_micros(record.timestamp.unix_micros() + 1);
    let err = audit_runtime::copy::RecordSink::append_records(&mut store, "acme", &[record]).unwrap_err();
    match &err {
        StoreError::Rejected { chain, reason } => {
            assert_eq!(chain, "acme");
            assert!(reason.contains("seq 2") && reason.contains("timestamp"), "{reason}");
        }
        other => panic!("not a rejection: {other:?}"),
    }
    // (An indexed value too long for a btree entry was refused here with SQLSTATE 54000; every
    // index now holds a bounded key, see `every_indexed_member_at_its_longest_goes_in`.)
    // A month the application may not create a partition for (SQLSTATE 22023), on a new
    // chain (a chain's head clamps time, so acme's next record is not old).
    let old = AuditEvent::new("user.login", Category::Authentication)
        .tenant("initech")
        .at(Timestamp::parse("2020-01-01T00:00:00Z").unwrap());
    let err = audit_runtime::store::append_events(&mut db.store_as(&app), [old]).unwrap_err();
    assert!(
        matches!(&err, StoreError::Rejected { chain, .. } if chain == "initech"),
        "{err:?}"
    );
    // Nothing of these went in, and the chain goes on.
    audit_runtime::store::append_events(&mut db.store_as(&app), [login()]).unwrap();
    let report = verify_source(&mut store, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert_eq!(report.chains[0].last_seq, 2);
}

/// `len` bytes or more of random text (a fixed seed, so runs agree): characters of two, three
/// and four bytes, incompressible, and with `escapes` every third one a backslash or U+0000,
/// which the column encoding doubles.
fn random_text(seed: u64, len: usize, escapes: bool) -> String {
    let mut x = seed * 2 + 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = String::new();
    while s.len() < len {
        let r = next();
        if escapes && r % 3 == 0 {
            s.push(if r % 2 == 0 { '\\' } else { '\0' });
            continue;
        }
        let c = match r % 3 {
            0 => 0xa1 + (r >> 8) % (0x800 - 0xa1),
            1 => 0x800 + (r >> 8) % (0xd800 - 0x800),
            _ => 0x10000 + (r >> 8) % (0x110000 - 0x10000),
        };
        s.extend(char::from_u32(c as u32));
    }
    s
}

/// Events whose indexed members (chain key and tenant, action, actor id, resource type and
/// id) and a few others are longer than the runtime's limit, so each is cut to 4,096 bytes
/// and marked `…[truncated N bytes]`: two chains, one of plain non-ASCII text, one with
/// backslashes and U+0000 besides.
fn longest_events() -> Vec<AuditEvent> {
    (0..8u64)
        .map(|i| {
            let escapes = i % 2 == 1;
            let text = |k: u64| random_text(1 + 10 * (i % 2) + k, 6000, escapes);
            let e = AuditEvent::new(text(1), Category::Mutation)
                .tenant(text(2))
                .actor(Actor::user(text(3 + 100 * i), AuthMethod::Sso))
                .resource(text(4), text(5 + 100 * i))
                .context("request_id", text(6 + 100 * i));
            if i % 4 == 3 { e.failure(text(7)) } else { e }
        })
        .collect()
}

/// Every record the file store accepts, PostgreSQL stores: an indexed value longer than a
/// btree entry may be (about 2,700 bytes, once SQLSTATE 54000, and the record set aside) goes
/// in through the writer and through a copy, and every filter and verify read it back.
#[test]
fn every_indexed_member_at_its_longest_goes_in() {
    let Some(mut db) = TestDb::new() else { return };
    let undelivered = audit_runtime::undelivered_count();
    let (layer, guard) = AuditLayer::builder(db.store()).build().expect("writer");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for e in longest_events() {
            e.emit().expect("emit");
        }
    });
    guard.flush().expect("flushed");
    assert_eq!(guard.set_aside_count(), 0, "nothing set aside: {:?}", guard.failure());
    guard.shutdown().expect("every event written");
    assert_eq!(audit_runtime::undelivered_count(), undelivered, "no event undelivered");
    let mut store = db.store();
    assert_eq!(store.set_aside_records().unwrap(), [], "nothing set aside");
    check_longest(&mut db.admin, &db.schema, &mut store);

    // The same records copied from a file store.
    let files = tempfile::tempdir().unwrap();
    audit_store_tests::write_through_layer(FileStore::open(files.path()).unwrap(), longest_events());
    let mut source = FileSource::open(files.path()).unwrap();
    let Some(mut copied) = TestDb::new() else { return };
    let mut sink = copied.store();
    let report = copy(&mut source, &mut sink, &CopyOptions::default()).expect("copy");
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.copied(), 8);
    drop(sink);
    let mut store = copied.store();
    assert_eq!(store.set_aside_records().unwrap(), [], "nothing set aside");
    assert_eq!(all_records(&mut store), all_records(&mut source), "byte for byte");
    check_longest(&mut copied.admin, &copied.schema, &mut store);
}

/// The stored records of `longest_events`: their columns really are past what a btree entry
/// holds, every filter finds each record by its values, and the chains verify and are sealed.
fn check_longest(admin: &mut Client, schema: &str, store: &mut PgStore) {
    let longest: Vec<i32> = ["chain", "tenant", "action", "actor_id", "resource_type", "resource_id"]
        .iter()
        .map(|c| {
            admin
                .query_one(
                    &format!("SELECT max(octet_length({c}))::int FROM \"{schema}\".audit_records"),
                    &[],
                )
                .unwrap()
                .get(0)
        })
        .collect();
    assert!(longest.iter().all(|&n| n > 4096), "encoded column lengths {longest:?}");

    let records = all_records(store);
    assert_eq!(records.len(), 8);
    let mut chains = store.chains().unwrap();
    chains.sort();
    let mut expected: Vec<String> = records.iter().map(|r| r.chain.clone()).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(chains, expected);
    assert!(
        chains.iter().all(|c| c.len() > 4096 && c.contains("…[truncated ")),
        "cut to the limit"
    );
    for r in &records {
        let ix = Indexed::from_line(&r.line).unwrap();
        let mut ids = |q: &Query| -> Vec<uuid::Uuid> {
            records_of(store, q)
                .iter()
                .map(|r| Indexed::from_line(&r.line).unwrap().id)
                .collect()
        };
        let resource_type = ix.resource_type.clone().unwrap();
        let resource_id = ix.resource_id.clone().unwrap();
        assert_eq!(ids(&Query::new().resource(resource_type, resource_id)), [ix.id]);
        assert_eq!(ids(&Query::new().actor(ix.actor_id.clone())), [ix.id]);
        assert_eq!(ids(&Query::new().tenant(r.chain.clone())).len(), 4);
        assert_eq!(ids(&Query::new().action(ix.action.clone())).len(), 4);
        assert_eq!(
            ids(&Query::new()
                .tenant(r.chain.clone())
                .actor(ix.actor_id.clone())
                .between(r.timestamp, Timestamp::from_unix_micros(r.timestamp.unix_micros() + 1))),
            [ix.id]
        );
        assert_eq!(
            store.chain_records(&r.chain, r.seq - 1).unwrap().count() as u64,
            5 - r.seq
        );
    }
    let report = verify_source(store, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert_eq!(report.chains.len(), 2);
    assert!(
        report.chains.iter().all(|c| c.sealed_through == Some(4)),
        "sealed: {report:#?}"
    );
}

/// Finding 1: records a store refuses are kept apart (`Store::set_aside`), in a table the
/// application may append to but not edit.
#[test]
fn one_nul_byte_wedges_the_postgresql_writer_for_good_set_aside() {
    let Some(mut db) = TestDb::new() else { return };
    let (_, app, _) = db.roles();
    let mut store = db.store_as(&app);
    let at = Timestamp::parse("2026-11-26T07:16:51.123456Z").unwrap();
    let refused = [
        SetAside {
            chain: NUL_TENANT.into(),
            reason: "the store refuses it: \\0 and \0".into(),
            at,
            event: br#"{"id":"x","resource":{"type":"invoice","id":"inv\u0000"}}"#.to_vec(),
        },
        SetAside {
            chain: "acme".into(),
            reason: "too long".into(),
            at,
            event: vec![0xff, 0, b'{'],
        },
    ];
    store.set_aside(&refused).expect("set aside");
    let rows = db
        .admin
        .query(
            &format!(
                "SELECT chain, set_aside_at, reason, event FROM \"{}\".audit_set_aside ORDER BY reason",
                db.schema
            ),
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].get::<_, String>(0),
        "ac\\0me\\\\0",
        "chain in the column encoding"
    );
    assert_eq!(rows[0].get::<_, String>(2), "the store refuses it: \\\\0 and \\0");
    assert_eq!(rows[0].get::<_, Vec<u8>>(3), refused[0].event);
    assert_eq!(rows[1].get::<_, Vec<u8>>(3), refused[1].event, "any bytes");
    let ts: DateTime<Utc> = rows[0].get(1);
    assert_eq!(ts.timestamp_micros(), at.unix_micros());
    let mut back = store.set_aside_records().unwrap();
    back.sort_by(|a, b| a.reason.cmp(&b.reason));
    assert_eq!(back, refused, "read back as written");
    // Append-only for the application, like the records.
    let mut c = db.client_as(&app);
    let t = format!("\"{}\".audit_set_aside", db.schema);
    for sql in [
        format!("UPDATE {t} SET reason = 'x'"),
        format!("DELETE FROM {t}"),
        format!("TRUNCATE {t}"),
    ] {
        let e = c.batch_execute(&sql).expect_err(&sql);
        eprintln!("{sql}: {}", message(&e));
    }
}

// ---------------------------------------------------------------------------------------
// Finding 7.

/// One row of `audit_records` as an INSERT gives it.
#[derive(Clone, Debug)]
struct Row {
    chain: String,
    seq: i64,
    ts: DateTime<Utc>,
    tenant: Option<String>,
    action: String,
    category: String,
    actor_id: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    outcome: String,
    id: uuid::Uuid,
    line: String,
    hash: Vec<u8>,
    prev_hash: Vec<u8>,
}

/// `event` chained onto `head`, as the writer would store it.
fn chained_record(head: &ChainHead, event: AuditEvent) -> StoredRecord {
    let mut batch = event_batch(&head.chain, [event]);
    let mut h = head.clone();
    batch.chain_onto(&mut h);
    let (_, _, line) = batch.records().next().unwrap();
    StoredRecord::from_line(line.strip_suffix(b"\n").unwrap().to_vec()).unwrap()
}

fn row_of(record: &StoredRecord) -> Row {
    let ix = Indexed::from_line(&record.line).unwrap();
    Row {
        chain: record.chain.clone(),
        seq: record.seq as i64,
        ts: DateTime::from_timestamp_micros(record.timestamp.unix_micros()).unwrap(),
        tenant: ix.tenant,
        action: ix.action,
        category: ix.category.as_str().into(),
        actor_id: ix.actor_id,
        resource_type: ix.resource_type,
        resource_id: ix.resource_id,
        outcome: ix.outcome.as_str().into(),
        id: ix.id,
        line: String::from_utf8(record.line.clone()).unwrap(),
        hash: record.hash.0.to_vec(),
        prev_hash: record.prev_hash.0.to_vec(),
    }
}

fn insert(c: &mut Client, schema: &str, r: &Row) -> Result<(), String> {
    c.execute(
        &format!(
            "INSERT INTO \"{schema}\".audit_records (chain, seq, ts, tenant, action, category, actor_id, resource_type,
                 resource_id, outcome, id, line, hash, prev_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ),
        &[
            &r.chain,
            &r.seq,
            &r.ts,
            &r.tenant,
            &r.action,
            &r.category,
            &r.actor_id,
            &r.resource_type,
            &r.resource_id,
            &r.outcome,
            &r.id,
            &r.line,
            &r.hash,
            &r.prev_hash,
        ],
    )
    .map(drop)
    .map_err(|e| message(&e))
}

/// Finding 7: as the application role the store documents, an INSERT that links correctly
/// (`seq`, `prev_hash`) but holds a garbage line whose hash is not its SHA-256 was accepted,
/// and so was a seal for a seq no record has; only the owner could remove them, and verify
/// failed for ever after. The application could also create partitions for any date. The
/// database must refuse each of these, naming what is wrong, and still take honest rows.
#[test]
fn the_postgresql_writer_role_can_plant_permanent_garbage() {
    let Some(mut db) = TestDb::new() else { return };
    let (_, app, _) = db.roles();
    let now = Timestamp::now();
    let mut writer = db.store_as(&app);
    audit_runtime::store::append_events(
        &mut writer,
        (0..3).map(|i| audit_store_tests::sample_event(i, Some("acme"), now)),
    )
    .unwrap();
    let head = writer.heads().unwrap().remove(0);
    let mut c = db.client_as(&app);
    let s = db.schema.clone();
    let honest = chained_record(
        &head,
        AuditEvent::new("billing.update", Category::Mutation)
            .tenant("acme")
            .actor(Actor::user("usr_7", AuthMethod::Mfa))
            .resource("invoice", "inv_7")
            .failure("declined")
            .at(now),
    );
    let good = row_of(&honest);

    let mut attacks: Vec<(&str, Row)> = Vec::new();
    let mut garbage = good.clone();
    garbage.line = "garbage".into();
    garbage.hash = vec![0xab; 32];
    attacks.push(("a garbage line with a made-up hash", garbage));
    let mut edited = good.clone();
    edited.line = edited.line.replace("inv_7", "inv_8");
    attacks.push(("an edited line under its old hash", edited));
    let mut bad_hash = good.clone();
    bad_hash.hash = vec![0xcd; 32];
    attacks.push(("a hash column that is not the line's", bad_hash));
    let mut json_garbage = good.clone();
    let body = r#"{"v":1,"id":"00000000-0000-0000-0000-000000000000","prev_hash":"x"}"#;
    json_garbage.line = body.to_owned();
    attacks.push(("a short JSON line", json_garbage));
    // A second `seq` member, with a hash that matches: readers would disagree on the seq.
    let mut twice = good.clone();
    let body = twice.line[..twice.line.len() - 75].replacen(",\"actor\":", ",\"seq\":5,\"actor\":", 1) + "}";
    let hash = audit_runtime::ChainHash::of(body.as_bytes());
    twice.line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    twice.hash = hash.0.to_vec();
    attacks.push(("a member twice", twice));
    // `"action":5` under a column that prints alike: not a record for any reader.
    let mut number = good.clone();
    let body = number.line[..number.line.len() - 75].replacen("\"action\":\"billing.update\"", "\"action\":5", 1) + "}";
    let hash = audit_runtime::ChainHash::of(body.as_bytes());
    number.line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    number.hash = hash.0.to_vec();
    number.action = "5".into();
    attacks.push(("a number for a string", number));
    for (what, change) in [
        (
            "tenant",
            &(|r: &mut Row| r.tenant = Some("globex".into())) as &dyn Fn(&mut Row),
        ),
        ("no tenant", &|r: &mut Row| r.tenant = None),
        ("action", &|r: &mut Row| r.action = "user.login".into()),
        ("category", &|r: &mut Row| r.category = "admin".into()),
        ("actor_id", &|r: &mut Row| r.actor_id = "usr_1".into()),
        ("resource_type", &|r: &mut Row| {
            r.resource_type = Some("customer".into())
        }),
        ("resource_id", &|r: &mut Row| r.resource_id = Some("inv_1".into())),
        ("no resource", &|r: &mut Row| {
            r.resource_type = None;
            r.resource_id = None
        }),
        ("outcome", &|r: &mut Row| r.outcome = "success".into()),
        ("id", &|r: &mut Row| r.id = uuid::Uuid::now_v7()),
        ("ts", &|r: &mut Row| r.ts += chrono::Duration::microseconds(1)),
    ] {
        let mut r = good.clone();
        change(&mut r);
        attacks.push((what, r));
    }
    // A correct line whose time goes back before the stored head: verify would find the
    // chain reordered for ever.
    let back = chained_record(
        &ChainHead {
            timestamp: Timestamp::from_unix_micros(0),
            ..head.clone()
        },
        AuditEvent::new("user.login", Category::Authentication)
            .tenant("acme")
            .at(Timestamp::from_unix_micros(now.unix_micros() - 3_600_000_000)),
    );
    attacks.push(("a record going back in time", row_of(&back)));

    for (what, row) in &attacks {
        let e = insert(&mut c, &s, row).expect_err(what);
        eprintln!("{what}: {e}");
        assert!(
            e.contains("acme") && e.contains("seq 4"),
            "{what}: the error names chain and seq: {e}"
        );
    }

    // Straight into the month's partition, past the parent's checks.
    let part = db.store().partition_names().unwrap().remove(0);
    let e = c
        .batch_execute(&format!(
            "INSERT INTO \"{s}\".\"{part}\" SELECT * FROM \"{s}\".audit_records WHERE seq = 3"
        ))
        .map_err(|e| message(&e))
        .expect_err("an insert into a partition");
    assert!(e.contains("permission denied"), "{e}");

    // Seals: one for a seq no record has, one whose hash is not the record's.
    let seal = |seq: i64, hash: &[u8]| {
        format!(
            "INSERT INTO \"{s}\".audit_seals (chain, seq, hash, sealed_at) VALUES ('acme', {seq}, '\\x{}', now())",
            hex(hash)
        )
    };
    for (what, sql) in [
        ("a seal of seq 999", seal(999, &head.hash.0)),
        ("a seal of seq 4, not yet written", seal(4, &honest.hash.0)),
        ("a seal of seq 2 with seq 3's hash", seal(2, &head.hash.0)),
    ] {
        let e = c.batch_execute(&sql).map_err(|e| message(&e)).expect_err(what);
        eprintln!("{what}: {e}");
        assert!(e.contains("seal"), "{what}: {e}");
    }

    // Partitions: only for the months an append can need.
    for month in ["1990-01-01", "2100-01-01"] {
        let e = c
            .batch_execute(&format!("SELECT \"{s}\".audit_ensure_partition('{month}')"))
            .map_err(|e| message(&e))
            .expect_err(month);
        eprintln!("partition for {month}: {e}");
    }
    let e = c
        .batch_execute(&format!("SELECT \"{s}\".audit_create_partition('1990-01-01')"))
        .map_err(|e| message(&e))
        .expect_err("the owner's partition function");
    assert!(e.contains("permission denied"), "{e}");
    assert_eq!(
        db.store().partition_names().unwrap().len(),
        1,
        "no partition made for the application"
    );

    // What the writer does still works: the honest row, and a seal of it.
    insert(&mut c, &s, &good).expect("an honest row");
    c.batch_execute(&seal(4, &honest.hash.0)).expect("an honest seal");
    c.batch_execute(&seal(2, &hash_of(&mut db.store(), 2).0))
        .expect("a seal of an older record");
    let mut store = db.store();
    let report = verify_source(&mut store, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert_eq!(
        (report.chains[0].last_seq, report.chains[0].sealed_through),
        (4, Some(4))
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_of(store: &mut PgStore, seq: u64) -> audit_runtime::ChainHash {
    store
        .chain_records("acme", seq - 1)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .hash
}

// ---------------------------------------------------------------------------------------
// Finding 8.

/// The README's PostgreSQL setup, between its markers, without the code fence.
fn readme_role_setup() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let block = readme
        .split("<!-- postgres-roles begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- postgres-roles end -->").next())
        .expect("README.md has the PostgreSQL setup between its markers");
    let sql = block.trim().strip_prefix("```sql").and_then(|b| b.strip_suffix("```"));
    sql.expect("a ```sql block").trim_start().to_owned()
}

/// The README's setup for another schema, to keep tests apart on one server: each identifier
/// `audit` (the schema) or `audit_owner`, `audit_app`, `audit_reader`, `audit_retention` (the
/// roles named after it) gets `schema` in place of `audit`. Nothing else changes.
fn for_schema(sql: &str, schema: &str) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find(ident) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
        let word = &rest[..end];
        match word.strip_prefix("audit") {
            Some(role) if ["", "_owner", "_app", "_reader", "_retention"].contains(&role) => {
                out.push_str(schema);
                out.push_str(role);
            }
            _ => out.push_str(word),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Drops a schema and its roles, also when the test fails half way.
struct Cleanup(Client, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        common::drop_schema_and_roles(&mut self.0, &self.1);
    }
}

#[test]
fn readme_role_setup_is_role_setup_sql() {
    let readme = readme_role_setup();
    assert_eq!(readme, audit_postgres::role_setup_sql("audit"));
    assert_eq!(
        for_schema(&readme, "audit_x1"),
        audit_postgres::role_setup_sql("audit_x1")
    );
}

/// Finding 8: migrating as the owner role (`?options=-c role=...`) after the documented
/// setup failed with "permission denied for database", because `CREATE SCHEMA IF NOT
/// EXISTS` needs CREATE on the database even when the schema exists. The README's setup
/// runs here as written (only the names made unique), then the owner migrates, the
/// application writes, a reader reads and retention purges, each as its role.
#[test]
fn the_documented_postgresql_role_setup_does_not_work_as_written() {
    let Some(admin) = common::admin() else { return };
    let schema = format!("audit_readme_{}", uuid::Uuid::now_v7().simple());
    let mut cleanup = Cleanup(admin, schema.clone());
    let roles = common::Roles::of(&schema);
    cleanup
        .0
        .batch_execute(&for_schema(&readme_role_setup(), &schema))
        .expect("the README's setup runs as written");
    let base = common::database_url();

    // The owner migrates, with the README's URL, and writes what the application may not:
    // last year's records.
    let sep = if base.contains('?') { '&' } else { '?' };
    let owner_url = format!("{base}{sep}schema={schema}&options=-c%20role%3D{}", roles.owner);
    let mut owner = PgStore::connect_url(&owner_url).expect("the owner migrates");
    let now = Timestamp::now();
    let ago = |days: i64| Timestamp::from_unix_micros(now.unix_micros() - days * 86_400_000_000);
    audit_runtime::store::append_events(
        &mut owner,
        (0..3).map(|i| audit_store_tests::sample_event(i, Some("acme"), ago(400))),
    )
    .expect("the owner writes old records");
    drop(owner);

    // The application writes through the layer, and reads.
    let events = (3..9)
        .map(|i| audit_store_tests::sample_event(i, Some("acme"), now))
        .collect();
    audit_store_tests::write_through_layer(db_store(&base, &roles.app, &schema), events);
    // On a chain of its own: a chain's head clamps time, so acme's next record is not old.
    let old = audit_store_tests::sample_event(9, Some("globex"), ago(800));
    let err = audit_runtime::store::append_events(&mut db_store(&base, &roles.app, &schema), [old]).unwrap_err();
    assert!(
        matches!(&err, StoreError::Rejected { reason, .. } if reason.contains("partition")),
        "the application makes no partition for last year: {err}"
    );

    // A reader reads and verifies, and may not write.
    let reader_url = format!("{}{sep}schema={schema}", common::url_as(&base, &roles.reader));
    let mut reader = PgStore::open_existing(&reader_url).expect("the reader opens the store");
    let report = verify_source(&mut reader, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert_eq!(report.chains[0].count, 9);
    assert_eq!(records_of(&mut reader, &Query::new().tenant("acme")).len(), 9);
    let mut c = Client::connect(&common::url_as(&base, &roles.reader), postgres::NoTls).unwrap();
    let e = c
        .batch_execute(&format!(
            "INSERT INTO \"{schema}\".audit_set_aside VALUES ('x', now(), 'x', '')"
        ))
        .expect_err("a reader may not write");
    assert!(message(&e).contains("permission denied"), "{}", message(&e));

    // Retention purges last year's month as its own role and records that it did.
    let mut target = db_store(&base, &roles.retention, &schema);
    let mut recorder = db_store(&base, &roles.retention, &schema);
    let config = audit_runtime::retention::RetentionConfig::new(audit_runtime::retention::Policy::soc2());
    let outcome = audit_runtime::retention::run(
        &mut target,
        &config,
        now,
        false,
        &mut audit_runtime::retention::record_into(&mut recorder),
    )
    .expect("retention purges");
    assert_eq!(outcome.units_removed.len(), 1, "{outcome:#?}");
    let report = verify_source(&mut reader, &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert_eq!((report.chains[0].first_seq, report.chains[0].last_seq), (4, 10));
}

fn db_store(base: &str, role: &str, schema: &str) -> PgStore {
    PgStore::connect(&common::url_as(base, role), schema).expect("connect as role")
}

/// Finding 7, seals of purged records: a copy brings the plain seals of records retention
/// purged, which cannot be checked against records any more; they are taken, unless they
/// contradict a seal stored for the same record, and verify still passes.
#[test]
fn the_postgresql_writer_role_can_plant_permanent_garbage_below_a_purge() {
    let Some(mut db) = TestDb::new() else { return };
    let (_, app, _) = db.roles();
    let now = Timestamp::now();
    let old = Timestamp::from_unix_micros(now.unix_micros() - 400 * 86_400_000_000);
    let mut owner = db.store();
    audit_runtime::store::append_events(
        &mut owner,
        (0..3).map(|i| audit_store_tests::sample_event(i, Some("acme"), old)),
    )
    .unwrap();
    let second = hash_of(&mut owner, 2);
    owner
        .seal(&[audit_runtime::store::Seal {
            chain: "acme".into(),
            seq: 2,
            hash: second,
            sealed_at: now,
        }])
        .unwrap();
    audit_runtime::store::append_events(&mut owner, [audit_store_tests::sample_event(3, Some("acme"), now)]).unwrap();
    let part = owner.partition_names().unwrap().remove(0);
    db.admin
        .batch_execute(&format!(
            "SELECT * FROM \"{}\".audit_purge_partition('{part}')",
            db.schema
        ))
        .unwrap();
    let s = db.schema.clone();
    let mut c = db.client_as(&app);
    let seal = |seq: i64, hash: &[u8]| {
        format!(
            "INSERT INTO \"{s}\".audit_seals (chain, seq, hash, sealed_at) VALUES ('acme', {seq}, '\\x{}', now())",
            hex(hash)
        )
    };
    let e = c
        .batch_execute(&seal(2, &[7; 32]))
        .map_err(|e| message(&e))
        .expect_err("a seal contradicting the stored one");
    assert!(e.contains("contradicts"), "{e}");
    c.batch_execute(&seal(1, &[7; 32])).expect("a seal of a purged record");
    let report = verify_source(&mut db.store(), &Default::default()).unwrap();
    assert!(report.is_ok(), "{:#?}", report.damages().collect::<Vec<_>>());
    assert_eq!((report.chains[0].first_seq, report.chains[0].last_seq), (4, 4));
}
