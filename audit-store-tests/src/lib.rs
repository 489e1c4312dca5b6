//! The store test suite shared by every audit store: the same tests run on files, SQLite
//! and PostgreSQL. A store crate implements [`Harness`] in its tests and expands
//! [`store_suite!`] with it:
//!
//! ```
//! use audit_store_tests::{FileHarness, Harness};
//!
//! // What `audit_store_tests::store_suite!(FileHarness);` expands to, one test per function:
//! audit_store_tests::run::<FileHarness>(audit_store_tests::writer_round_trip);
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use audit_runtime::copy::{CopyOptions, RecordSink, copy};
use audit_runtime::export::Format;
use audit_runtime::query::{Order, OutcomeStatus, Query, RecordSource, StoredRecord, export_source, verify_source};
use audit_runtime::retention::{Policy, RetentionConfig, RetentionTarget, record_into, run as run_retention};
use audit_runtime::store::Store;
use audit_runtime::store::file::{FileRetention, FileSink};
use audit_runtime::verify::DamageKind;
use audit_runtime::{
    Actor, AuditEvent, AuditLayer, AuthMethod, Category, FileSource, FileStore, FileStoreOptions, Record, Timestamp,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tracing_subscriber::prelude::*;

const DAY: i64 = 86_400_000_000;
const MINUTE: i64 = 60_000_000;

/// One store under test: how to open its writer side, its reader, its copy destination and
/// its retention, and how to tamper with it.
pub trait Harness: Sized {
    /// The writer's store.
    type Writer: Store;
    /// The reader.
    type Source: RecordSource;
    /// The copy destination.
    type Sink: RecordSink;
    /// Retention.
    type Retention: RetentionTarget;

    /// A name for messages.
    const NAME: &'static str;

    /// A fresh, empty store, or `None` to skip (a server that is unreachable outside CI).
    fn setup() -> Option<Self>;

    /// Opens the store for a writer (only one at a time for files).
    fn writer(&mut self) -> Self::Writer;

    /// Opens a reader.
    fn source(&mut self) -> Self::Source;

    /// Opens the store as a copy destination.
    fn sink(&mut self) -> Self::Sink;

    /// Opens the store for retention.
    fn retention(&mut self) -> Self::Retention;

    /// Deletes the record `seq` of `chain` the way an attacker with full rights would,
    /// bypassing the store's append-only protections.
    fn tamper_delete(&mut self, chain: &str, seq: u64);

    /// Tries to UPDATE, DELETE and TRUNCATE audit records as the application may; each
    /// attempt must fail. Empty for stores without such operations (files).
    fn try_edits_as_application(&mut self) -> Vec<(&'static str, Result<(), String>)>;

    /// Whether old records may be purged record by record (SQLite, files with one record
    /// per segment) rather than in whole time partitions only.
    fn purges_by_partition() -> bool {
        false
    }
}

/// Runs one suite test on a fresh store of `H`, or skips it when `H` cannot be set up.
pub fn run<H: Harness>(test: fn(&mut H)) {
    let Some(mut h) = H::setup() else { return };
    test(&mut h);
}

/// Expands to one `#[test]` per suite test for harness type `$h`.
#[macro_export]
macro_rules! store_suite {
    ($h:ty) => {
        $crate::store_suite!(@tests $h;
            writer_round_trip, reopen_continues_chains, query_filters_and_pagination, tenant_export_verifies,
            copy_round_trip, retention_purge_then_verify, deleted_row_is_detected, append_only_is_enforced,
            tenant_isolation_property);
    };
    (@tests $h:ty; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                $crate::run::<$h>($crate::$name);
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------
// Writing test data.

/// Emits `events` through an [`AuditLayer`] over `store` (the real writer path), then shuts
/// the writer down, which flushes and seals.
pub fn write_through_layer<S: Store>(store: S, events: Vec<AuditEvent>) {
    let (layer, guard) = AuditLayer::builder(store).build().expect("writer starts");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for e in events {
            e.emit().expect("event delivered");
        }
    });
    guard.shutdown().expect("writer shuts down cleanly");
}

/// A varied event for tenant `tenant` (`None`: the default chain) at `at`.
pub fn sample_event(i: usize, tenant: Option<&str>, at: Timestamp) -> AuditEvent {
    const ACTIONS: [(&str, Category); 5] = [
        ("billing.update", Category::Mutation),
        ("billing.card.update", Category::Mutation),
        ("user.login", Category::Authentication),
        ("billingx.update", Category::Mutation),
        ("customer_record.read", Category::DataAccess),
    ];
    const ACTORS: [&str; 3] = ["usr_1", "usr_2", "svc_9"];
    let (action, category) = ACTIONS[i % ACTIONS.len()];
    let mut e = AuditEvent::new(action, category)
        .actor(Actor::user(ACTORS[i % 3], AuthMethod::Sso))
        .at(at);
    e = match i % 4 {
        0 => e.resource("invoice", format!("inv_{}", i % 5)),
        1 => e.resource("customer", "c_1"),
        2 => e,
        _ => e.resource("customer", "=HYPERLINK(\"http://evil.invalid\")"),
    };
    if i % 7 == 3 {
        e = e.failure("card declined");
    }
    if let Some(t) = tenant {
        e = e.tenant(t);
    }
    e.context("ip", "203.0.113.7").context("request_id", format!("req_{i}"))
}

/// A fixed base time for data whose absolute time does not matter.
pub fn base_time() -> Timestamp {
    Timestamp::parse("2026-03-01T00:00:00Z").expect("valid")
}

/// The standard data set: 3 chains (`acme`, `globex`, `default`), `n` events over a few days.
pub fn standard_events(n: usize) -> Vec<AuditEvent> {
    let base = base_time().unix_micros();
    (0..n)
        .map(|i| {
            let tenant = match i % 3 {
                0 => Some("acme"),
                1 => Some("globex"),
                _ => None,
            };
            sample_event(i, tenant, Timestamp::from_unix_micros(base + i as i64 * 37 * MINUTE))
        })
        .collect()
}

/// Every record of every chain, read chain by chain (the ground truth the queries are
/// checked against).
pub fn all_records(source: &mut dyn RecordSource) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    for chain in source.chains().expect("chains") {
        let records: Vec<StoredRecord> = source
            .chain_records(&chain, 0)
            .expect("read")
            .collect::<Result<_, _>>()
            .expect("records");
        out.extend(records);
    }
    out
}

fn collect(source: &mut dyn RecordSource, q: &Query) -> Vec<StoredRecord> {
    source
        .query(q)
        .expect("query runs")
        .collect::<Result<_, _>>()
        .expect("records")
}

/// What `q` must return, computed from the ground truth independently of the stores.
pub fn expected(all: &[StoredRecord], q: &Query) -> Vec<StoredRecord> {
    let mut out: Vec<StoredRecord> = all
        .iter()
        .filter(|r| {
            let rec = Record::parse(&r.line).expect("valid record");
            let action_ok = match q.action.as_deref() {
                None => true,
                Some(p) if p.ends_with(".*") => rec.action.starts_with(&p[..p.len() - 1]),
                Some(a) => rec.action == a,
            };
            q.tenant.as_deref().is_none_or(|t| t == r.chain)
                && q.from.is_none_or(|f| r.timestamp >= f)
                && q.to.is_none_or(|t| r.timestamp < t)
                && action_ok
                && q.actor.as_deref().is_none_or(|a| a == rec.actor.id)
                && q.resource_type
                    .as_deref()
                    .is_none_or(|t| rec.resource.as_ref().is_some_and(|x| x.kind == t))
                && q.resource_id
                    .as_deref()
                    .is_none_or(|i| rec.resource.as_ref().is_some_and(|x| x.id == i))
                && q.outcome
                    .is_none_or(|o| (o == OutcomeStatus::Success) == rec.outcome.is_success())
        })
        .cloned()
        .collect();
    out.sort_by(|a, b| (a.timestamp, &a.chain, a.seq).cmp(&(b.timestamp, &b.chain, b.seq)));
    if q.order == Order::NewestFirst {
        out.reverse();
    }
    if let Some(n) = q.limit {
        out.truncate(n);
    }
    out
}

fn seqs(records: &[StoredRecord]) -> Vec<(String, u64)> {
    records.iter().map(|r| (r.chain.clone(), r.seq)).collect()
}

fn assert_verifies(source: &mut dyn RecordSource, what: &str) -> audit_runtime::verify::VerifyReport {
    let report = verify_source(source, &Default::default()).expect("verify runs");
    let damages: Vec<String> = report.damages().map(|d| d.to_string()).collect();
    assert!(damages.is_empty(), "{what}: damage found: {damages:#?}");
    report
}

// ---------------------------------------------------------------------------------------
// The tests.

/// Events written through the layer come back byte for byte, chained, sealed, verifiable.
pub fn writer_round_trip<H: Harness>(h: &mut H) {
    write_through_layer(h.writer(), standard_events(30));
    let mut src = h.source();
    assert_eq!(src.chains().unwrap(), ["acme", "default", "globex"], "{}", H::NAME);
    let all = all_records(&mut src);
    assert_eq!(all.len(), 30);
    for chain in ["acme", "default", "globex"] {
        let recs: Vec<_> = all.iter().filter(|r| r.chain == chain).collect();
        assert_eq!(
            recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        for r in recs {
            let line = std::str::from_utf8(&r.line).unwrap();
            assert!(
                line.starts_with("{\"v\":1,\"id\":\"") && line.ends_with("\"}"),
                "{line}"
            );
            assert_eq!(
                StoredRecord::from_line(r.line.clone()).unwrap(),
                *r,
                "columns agree with the bytes"
            );
        }
    }
    let report = assert_verifies(&mut src, H::NAME);
    assert_eq!(report.chains.len(), 3);
    assert!(
        report.chains.iter().all(|c| c.sealed_through == Some(10)),
        "shutdown seals every chain: {report:#?}"
    );
    let seals = src.seals().unwrap();
    assert!(
        seals
            .iter()
            .any(|s| s.seal.chain == "acme" && s.seal.seq == 10 && !s.purged)
    );
    // Heads as the writer sees them on restart.
    let mut w = h.writer();
    let mut heads = w.heads().unwrap();
    heads.sort_by(|a, b| a.chain.cmp(&b.chain));
    assert_eq!(
        heads.iter().map(|h| (h.chain.as_str(), h.seq)).collect::<Vec<_>>(),
        [("acme", 10), ("default", 10), ("globex", 10)]
    );
}

/// A second writer (a restart) continues every chain where it stopped.
pub fn reopen_continues_chains<H: Harness>(h: &mut H) {
    let events = standard_events(12);
    let (first, second) = events.split_at(6);
    write_through_layer(h.writer(), first.to_vec());
    write_through_layer(h.writer(), second.to_vec());
    // And a direct append (retention's and imports' path), without the writer thread.
    let mut w = h.writer();
    audit_runtime::store::append_events(&mut w, [sample_event(99, Some("acme"), Timestamp::now())]).unwrap();
    drop(w);
    let mut src = h.source();
    let report = assert_verifies(&mut src, H::NAME);
    let acme = report.chains.iter().find(|c| c.chain == "acme").unwrap();
    assert_eq!((acme.first_seq, acme.last_seq, acme.count), (1, 5, 5));
}

/// Every filter, both orders, and cursor pagination, against a model of the data.
pub fn query_filters_and_pagination<H: Harness>(h: &mut H) {
    write_through_layer(h.writer(), standard_events(60));
    let mut src = h.source();
    let all = all_records(&mut src);
    assert_eq!(all.len(), 60);
    let t = |hours: i64| Timestamp::from_unix_micros(base_time().unix_micros() + hours * 60 * MINUTE);
    let queries = [
        Query::new(),
        Query::new().tenant("acme"),
        Query::new().tenant("acme").between(t(5), t(20)),
        Query::new().tenant("nobody"),
        Query::new().action("billing.*"),
        Query::new().action("billing.update"),
        Query::new()
            .tenant("globex")
            .action("billing.*")
            .order(Order::NewestFirst),
        Query::new().actor("usr_2"),
        Query::new().resource("customer", "c_1"),
        Query::new().outcome(OutcomeStatus::Failure),
        Query::new()
            .outcome(OutcomeStatus::Success)
            .tenant("default")
            .from(t(10)),
        Query::new().order(Order::NewestFirst).to(t(24)),
        Query::new().tenant("acme").order(Order::NewestFirst).limit(3),
        Query::new().limit(0),
    ];
    for q in &queries {
        let got = collect(&mut src, q);
        let want = expected(&all, q);
        assert_eq!(seqs(&got), seqs(&want), "{}: {q:?}", H::NAME);
        assert!(got.iter().zip(&want).all(|(a, b)| a == b), "exact bytes for {q:?}");
        // Page through the same results with cursors.
        for size in [1, 7] {
            let mut paged = Vec::new();
            let mut page_q = Query {
                limit: Some(size),
                ..q.clone()
            };
            if q.limit.is_some() {
                continue;
            }
            loop {
                let page = audit_runtime::query::page(&mut src, &page_q).unwrap();
                paged.extend(page.records);
                match page.next {
                    Some(c) => page_q.after = Some(c.to_string().parse().unwrap()),
                    None => break,
                }
                assert!(paged.len() <= want.len(), "pagination runs away for {q:?}");
            }
            assert_eq!(seqs(&paged), seqs(&want), "{} pages of {size}: {q:?}", H::NAME);
        }
    }
}

/// One tenant's export over a date range is a chain segment that verifies on its own (with
/// the runtime's verifier and with the README's independent script), and CSV is clean.
pub fn tenant_export_verifies<H: Harness>(h: &mut H) {
    write_through_layer(h.writer(), standard_events(60));
    let mut src = h.source();
    let from = Timestamp::from_unix_micros(base_time().unix_micros() + 6 * 60 * MINUTE);
    let to = Timestamp::from_unix_micros(base_time().unix_micros() + 30 * 60 * MINUTE);
    let q = Query::new().tenant("acme").between(from, to);
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("acme.jsonl");
    let summary = export_source(&mut src, &q, Format::Jsonl, std::fs::File::create(&jsonl).unwrap()).unwrap();
    let want = expected(&all_records(&mut src), &q);
    assert_eq!(summary.written, want.len() as u64);
    assert!(want.len() > 5 && want[0].seq > 1, "the range starts mid-chain");
    let report = audit_runtime::verify::verify_paths(&[&jsonl], &Default::default()).unwrap();
    assert!(report.is_ok(), "{:?}", report.damages().collect::<Vec<_>>());
    assert_eq!(report.chains.len(), 1);
    assert_eq!(report.chains[0].chain, "acme");
    assert_eq!(
        (report.chains[0].first_seq, report.chains[0].last_seq),
        (want[0].seq, want.last().unwrap().seq)
    );
    assert_eq!(report.chains[0].start_prev_hash, want[0].prev_hash);
    run_readme_script(&jsonl);

    let csv_path = dir.path().join("acme.csv");
    let summary = export_source(&mut src, &q, Format::Csv, std::fs::File::create(&csv_path).unwrap()).unwrap();
    assert_eq!(summary.written, want.len() as u64);
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    assert_eq!(
        reader.headers().unwrap().len(),
        audit_runtime::export::CSV_COLUMNS.len()
    );
    let mut rows = 0;
    for row in reader.records() {
        let row = row.expect("CSV parses cleanly");
        assert_eq!(row.len(), audit_runtime::export::CSV_COLUMNS.len());
        for cell in row.iter() {
            assert!(!cell.starts_with(['=', '+', '-', '@']), "formula cell in CSV: {cell:?}");
        }
        assert_eq!(&row[1], "acme");
        rows += 1;
    }
    assert_eq!(rows, want.len());
    let text = std::fs::read_to_string(&csv_path).unwrap();
    assert!(
        text.contains("'=HYPERLINK"),
        "the injection payload is present, neutralised"
    );
}

/// Runs `scripts/verify_chain.py` from the workspace on `file` when Python is available.
pub fn run_readme_script(file: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/verify_chain.py");
    if !script.exists() {
        eprintln!(
            "note: {} not found; the independent script check is skipped",
            script.display()
        );
        return;
    }
    match std::process::Command::new("python3").arg(&script).arg(file).output() {
        Ok(out) => assert!(
            out.status.success(),
            "the independent script rejects the export: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("note: python3 is not available ({e}); the independent script check is skipped"),
    }
}

/// Copies this store to files and files back into a fresh store of the same kind, byte for
/// byte, verified, and running each copy twice adds nothing.
pub fn copy_round_trip<H: Harness>(h: &mut H) {
    write_through_layer(h.writer(), standard_events(45));
    let files = tempfile::tempdir().unwrap();
    let mut src = h.source();
    {
        let mut sink = FileSink::open(files.path()).unwrap();
        let report = copy(
            &mut src,
            &mut sink,
            &CopyOptions {
                batch_size: 4,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(report.is_ok());
        assert_eq!(report.copied(), 45);
        assert!(report.seals_added >= 3);
        let again = copy(&mut src, &mut sink, &CopyOptions::default()).unwrap();
        assert_eq!((again.copied(), again.seals_added), (0, 0), "idempotent");
    }
    let report = audit_runtime::verify::verify_paths(&[files.path()], &Default::default()).unwrap();
    assert!(report.is_ok(), "{:?}", report.damages().collect::<Vec<_>>());
    let mut file_src = FileSource::open(files.path()).unwrap();
    assert_eq!(all_records(&mut file_src), all_records(&mut src), "byte for byte");

    let Some(mut fresh) = H::setup() else { return };
    let mut sink = fresh.sink();
    // Half first (resumable), then the rest.
    let some = CopyOptions {
        chains: Some(vec!["acme".into()]),
        ..Default::default()
    };
    assert_eq!(copy(&mut file_src, &mut sink, &some).unwrap().copied(), 15);
    let rest = copy(&mut file_src, &mut sink, &CopyOptions::default()).unwrap();
    assert!(rest.is_ok());
    assert_eq!(rest.copied(), 30);
    assert_eq!(
        copy(&mut file_src, &mut sink, &CopyOptions::default())
            .unwrap()
            .copied(),
        0
    );
    drop(sink);
    let mut copied = fresh.source();
    assert_eq!(all_records(&mut copied), all_records(&mut src), "byte for byte");
    let report = assert_verifies(&mut copied, H::NAME);
    assert!(
        report.chains.iter().all(|c| c.sealed_through == Some(15)),
        "seals copied: {report:#?}"
    );
    // The copy goes on as a live store.
    write_through_layer(fresh.writer(), vec![sample_event(1, Some("acme"), Timestamp::now())]);
    assert_verifies(&mut fresh.source(), "copied store after a new write");
}

/// Retention purges whole old units after sealing, records its own event, honours per-tenant
/// overrides and legal holds, and the remaining chains verify (also after a copy).
pub fn retention_purge_then_verify<H: Harness>(h: &mut H) {
    let now = Timestamp::now();
    let ago = |days: i64| Timestamp::from_unix_micros(now.unix_micros() - days * DAY);
    // One event per append, so file stores put each in its own segment.
    let plan: [(&str, &[i64]); 3] = [
        ("acme", &[800, 700, 600, 100, 10]),
        ("globex", &[500, 10]),
        ("initech", &[500, 10]),
    ];
    let mut events: Vec<(i64, &str)> = plan
        .iter()
        .flat_map(|(t, ages)| ages.iter().map(move |a| (*a, *t)))
        .collect();
    events.sort_by_key(|(age, _)| -age);
    {
        let mut w = h.writer();
        for (i, (age, tenant)) in events.iter().enumerate() {
            audit_runtime::store::append_events(&mut w, [sample_event(i, Some(tenant), ago(*age))]).unwrap();
        }
    }
    let config = RetentionConfig::new(Policy::soc2())
        .tenant("globex", Policy::seven_years())
        .hold("initech");
    let mut target = h.retention();
    let dry = target.plan(&config, now).unwrap();
    let by_chain = dry.by_chain();
    assert_eq!(by_chain.len(), 1, "{}: only acme may lose records: {dry:#?}", H::NAME);
    assert_eq!(
        (by_chain[0].chain.as_str(), by_chain[0].first_seq, by_chain[0].last_seq),
        ("acme", 1, 3),
        "{dry:#?}"
    );
    assert!(
        dry.blocked.iter().any(|b| b.reason.contains("legal hold")),
        "the hold shows in the dry run: {dry:#?}"
    );
    // A dry run changes nothing.
    let mut no_event = |_: AuditEvent| -> Result<(), audit_runtime::AuditError> { panic!("no event on a dry run") };
    let outcome = run_retention(&mut target, &config, now, true, &mut no_event).unwrap();
    assert!(outcome.units_removed.is_empty());
    assert_eq!(all_records(&mut h.source()).len(), 9);

    let mut w = h.writer();
    let outcome = run_retention(&mut target, &config, now, false, &mut record_into(&mut w)).unwrap();
    drop(w);
    assert_eq!(outcome.purged.len(), 1);
    assert!(!outcome.units_removed.is_empty());
    let mut src = h.source();
    let report = assert_verifies(&mut src, &format!("{} after purge", H::NAME));
    let acme = report.chains.iter().find(|c| c.chain == "acme").unwrap();
    assert_eq!(
        (acme.first_seq, acme.last_seq),
        (4, 6),
        "acme resumes after its purge seal, plus the purge event"
    );
    let stored = src.chain_records("acme", 5).unwrap().next().unwrap().unwrap();
    let event = Record::parse(&stored.line).unwrap();
    assert_eq!(event.action, audit_runtime::retention::PURGE_ACTION);
    assert!(
        src.seals()
            .unwrap()
            .iter()
            .any(|s| s.purged && s.seal.chain == "acme" && s.seal.seq == 3)
    );
    for (chain, n) in [("globex", 2), ("initech", 2)] {
        assert_eq!(
            src.chain_records(chain, 0).unwrap().count(),
            n,
            "{chain} keeps everything"
        );
    }
    // Nothing more to do; the chain goes on; a copy of the purged store verifies.
    assert!(target.plan(&config, now).unwrap().is_empty());
    drop(target);
    write_through_layer(h.writer(), vec![sample_event(7, Some("acme"), Timestamp::now())]);
    let mut src = h.source();
    assert_verifies(&mut src, "after purge and a new write");
    let files = tempfile::tempdir().unwrap();
    let mut sink = FileSink::open(files.path()).unwrap();
    assert!(copy(&mut src, &mut sink, &CopyOptions::default()).unwrap().is_ok());
    drop(sink);
    let report = audit_runtime::verify::verify_paths(&[files.path()], &Default::default()).unwrap();
    assert!(
        report.is_ok(),
        "copy of a purged store: {:?}",
        report.damages().collect::<Vec<_>>()
    );
    // And into a fresh store of this kind, which must accept a chain that resumes after its
    // purge seal.
    if let Some(mut fresh) = H::setup() {
        let mut sink = fresh.sink();
        let report = copy(&mut src, &mut sink, &CopyOptions::default()).unwrap();
        assert!(report.is_ok());
        drop(sink);
        let mut copied = fresh.source();
        assert_eq!(all_records(&mut copied), all_records(&mut src), "byte for byte");
        assert_verifies(&mut copied, &format!("{}: copy of a purged store", H::NAME));
        write_through_layer(fresh.writer(), vec![sample_event(8, Some("acme"), Timestamp::now())]);
        assert_verifies(&mut fresh.source(), "copy of a purged store, written to");
    }
    // Deleting the record right after the purge point is still caught.
    h.tamper_delete("acme", 4);
    let report = verify_source(&mut h.source(), &Default::default()).unwrap();
    assert!(
        !report.is_ok(),
        "{}: a record deleted after the purge point goes unnoticed",
        H::NAME
    );
}

/// A record deleted from the middle of a chain is reported as missing, at its seq.
pub fn deleted_row_is_detected<H: Harness>(h: &mut H) {
    write_through_layer(h.writer(), standard_events(30));
    h.tamper_delete("acme", 4);
    let report = verify_source(&mut h.source(), &Default::default()).unwrap();
    let damages: Vec<_> = report.damages().collect();
    assert_eq!(damages.len(), 1, "{}: {damages:#?}", H::NAME);
    assert_eq!(damages[0].kind, DamageKind::Missing);
    assert_eq!((damages[0].chain.as_deref(), damages[0].seq), (Some("acme"), Some(4)));
}

/// UPDATE, DELETE and TRUNCATE of audit records fail for the application.
pub fn append_only_is_enforced<H: Harness>(h: &mut H) {
    write_through_layer(h.writer(), standard_events(6));
    let attempts = h.try_edits_as_application();
    for (what, result) in &attempts {
        match result {
            Ok(()) => panic!("{}: {what} of audit records succeeded", H::NAME),
            Err(e) => eprintln!("{}: {what} refused: {e}", H::NAME),
        }
    }
    assert_verifies(&mut h.source(), "after the refused edits");
    assert_eq!(all_records(&mut h.source()).len(), 6);
}

/// A query scoped to one tenant never returns another tenant's records, whatever the
/// tenants, ranges, order and page size (property test against a model).
pub fn tenant_isolation_property<H: Harness>(h: &mut H) {
    const TENANTS: [&str; 6] = ["acme", "acme2", "ac", "globex", "default", "init-ech"];
    let base = base_time().unix_micros();
    // Interleaved tenants at random-looking times; some share a microsecond.
    let events: Vec<AuditEvent> = (0..120)
        .map(|i| {
            let t = TENANTS[(i * 7 + i / 5) % TENANTS.len()];
            let tenant = (t != "default").then_some(t);
            let at = base + ((i * 7919) % 500) as i64 * 3 * MINUTE + (i % 3) as i64;
            sample_event(i, tenant, Timestamp::from_unix_micros(at))
        })
        .collect();
    write_through_layer(h.writer(), events);
    let mut src = h.source();
    let all = all_records(&mut src);
    assert_eq!(all.len(), 120);
    // `TestRunner::run` takes a `Fn`: the source is borrowed mutably per case.
    let cell = std::cell::RefCell::new(src);
    let span = 1600 * 3 * MINUTE;
    let strategy = (
        0..TENANTS.len() + 1,
        0..span,
        0..span,
        any::<bool>(),
        1usize..25,
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(ti, a, len, newest, page, by_action)| {
            let tenant = TENANTS.get(ti).copied().unwrap_or("nobody");
            let mut q = Query::new().tenant(tenant).between(
                Timestamp::from_unix_micros(base + a - span / 4),
                Timestamp::from_unix_micros(base + a + len / 2),
            );
            if newest {
                q = q.order(Order::NewestFirst);
            }
            if by_action {
                q = q.action("billing.*");
            }
            let want = expected(&all, &q);
            let mut src = cell.borrow_mut();
            let got = collect(&mut *src, &q);
            prop_assert!(
                got.iter().all(|r| r.chain == tenant),
                "another tenant's record for {}",
                tenant
            );
            prop_assert_eq!(seqs(&got), seqs(&want));
            let mut paged = Vec::new();
            let mut pq = q.clone().limit(page);
            loop {
                let p = audit_runtime::query::page(&mut *src, &pq).unwrap();
                paged.extend(p.records);
                match p.next {
                    Some(c) => pq.after = Some(c),
                    None => break,
                }
            }
            prop_assert!(paged.iter().all(|r| r.chain == tenant));
            prop_assert_eq!(seqs(&paged), seqs(&want));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", H::NAME));
    // Per-tenant counts add up to the whole.
    let mut src = cell.into_inner();
    let counts: BTreeMap<&str, usize> = TENANTS
        .iter()
        .map(|t| (*t, collect(&mut src, &Query::new().tenant(*t)).len()))
        .collect();
    assert_eq!(counts.values().sum::<usize>(), 120);
}

// ---------------------------------------------------------------------------------------
// The file store's harness.

/// The suite's harness for the file store, in a temporary directory. Segments are tiny so
/// that retention has whole segments to remove.
pub struct FileHarness {
    dir: tempfile::TempDir,
}

impl FileHarness {
    fn options() -> FileStoreOptions {
        FileStoreOptions {
            max_segment_bytes: 1,
            ..FileStoreOptions::default()
        }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Harness for FileHarness {
    type Writer = FileStore;
    type Source = FileSource;
    type Sink = FileSink;
    type Retention = FileRetention;
    const NAME: &'static str = "files";

    fn setup() -> Option<Self> {
        Some(FileHarness {
            dir: tempfile::tempdir().expect("temp dir"),
        })
    }

    fn writer(&mut self) -> FileStore {
        FileStore::with_options(self.dir.path(), Self::options()).expect("open file store")
    }

    fn source(&mut self) -> FileSource {
        FileSource::open(self.dir.path()).expect("open file source")
    }

    fn sink(&mut self) -> FileSink {
        FileSink::with_options(self.dir.path(), Self::options()).expect("open file sink")
    }

    fn retention(&mut self) -> Self::Retention {
        FileRetention::open(self.dir.path()).expect("open retention")
    }

    fn tamper_delete(&mut self, chain: &str, seq: u64) {
        let chain_dir = self
            .dir
            .path()
            .join("chains")
            .join(audit_runtime::store::file::encode_chain(chain));
        for segment in audit_runtime::store::file::segments(&chain_dir).unwrap() {
            let text = std::fs::read_to_string(&segment).unwrap();
            let marker = format!(",\"seq\":{seq},");
            if text.lines().any(|l| l.contains(&marker)) {
                let kept: String = text
                    .lines()
                    .filter(|l| !l.contains(&marker))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let mut perms = std::fs::metadata(&segment).unwrap().permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perms.set_readonly(false);
                std::fs::set_permissions(&segment, perms).unwrap();
                std::fs::write(&segment, kept).unwrap();
                if std::fs::metadata(&segment).unwrap().len() == 0 {
                    std::fs::remove_file(&segment).unwrap();
                }
                return;
            }
        }
        panic!("no record {chain}/{seq} to delete");
    }

    fn try_edits_as_application(&mut self) -> Vec<(&'static str, Result<(), String>)> {
        Vec::new()
    }
}

/// A path inside the workspace's `scripts/` directory.
pub fn workspace_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name)
}
