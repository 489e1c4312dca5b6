//! Fault injection over the writer: a store whose appends, syncs and seals fail at random
//! points (seeded), round after round. After each round, every event a returned `flush()`
//! covered is stored exactly once, nothing is stored twice, and every chain verifies.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_runtime::store::{ChainBatch, ChainHead, Seal, Store, SyncJob};
use audit_runtime::{AuditEvent, AuditLayer, Category, FailureMode, FileStore, StoreError};
use tracing_subscriber::prelude::*;

/// Failure odds, in percent, of each operation while `on` is set.
struct Odds {
    append: u32,
    sync: u32,
    seal: u32,
}

/// A real file store that fails operations at random (before they touch the disk, as a full
/// disk or a failing device does), from a seeded generator.
struct Flaky {
    inner: FileStore,
    rng: Arc<Mutex<fastrand::Rng>>,
    on: Arc<AtomicBool>,
    odds: Odds,
}

impl Flaky {
    fn fails(&self, percent: u32) -> bool {
        self.on.load(Ordering::SeqCst) && self.rng.lock().unwrap().u32(0..100) < percent
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::Config(format!("injected {what} failure"))
}

impl Store for Flaky {
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        self.inner.heads()
    }
    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
        if self.fails(self.odds.append) {
            return Err(injected("append"));
        }
        self.inner.append(batch, head)
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        if self.fails(self.odds.sync) {
            return Err(injected("sync"));
        }
        self.inner.sync()
    }
    fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        let fail = self.fails(self.odds.sync);
        let job = self.inner.sync_job()?;
        Ok(job.map(|job| -> SyncJob {
            Box::new(move || {
                // The real sync runs either way: a device may fail after writing.
                job()?;
                if fail { Err(injected("sync")) } else { Ok(()) }
            })
        }))
    }
    fn seal(&mut self, seals: &[Seal]) -> Result<(), StoreError> {
        if self.fails(self.odds.seal) {
            return Err(injected("seal"));
        }
        self.inner.seal(seals)
    }
}

#[test]
fn random_store_faults_never_lose_or_double_an_acknowledged_event() {
    let rounds: u64 = 24;
    let mut failed_flushes = 0;
    for seed in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let on = Arc::new(AtomicBool::new(true));
        let store = Flaky {
            inner: FileStore::open(dir.path()).unwrap(),
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
            on: Arc::clone(&on),
            odds: Odds {
                append: 5 + (seed % 4) as u32 * 10,
                sync: (seed % 3) as u32 * 10,
                seal: 20,
            },
        };
        let (layer, guard) = AuditLayer::builder(store)
            .max_batch(8)
            .capacity(128)
            .commit_interval(Duration::from_millis(1))
            .seal_interval(Duration::from_millis(5))
            .build()
            .unwrap();
        let mut acknowledged: Vec<String> = Vec::new();
        let mut emitted: Vec<String> = Vec::new();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for i in 0..400u64 {
                let id = format!("{seed}-{i}");
                AuditEvent::new("invoice.update", Category::Mutation)
                    .tenant(["acme", "globex", "initech"][(i % 3) as usize])
                    .resource("invoice", &id)
                    .emit_with(FailureMode::Refuse)
                    .unwrap();
                emitted.push(id);
                if i % 25 == 24 {
                    match guard.flush() {
                        Ok(()) => acknowledged.clone_from(&emitted),
                        Err(_) => failed_flushes += 1,
                    }
                }
            }
        });
        // Faults end: everything held is written, and the last flush covers every event.
        on.store(false, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while guard.failure().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "seed {seed}: the writer did not recover"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        guard.flush().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        guard.shutdown().unwrap();

        let report = common::assert_verifies(dir.path());
        let mut stored = HashSet::new();
        for chain in ["acme", "globex", "initech"] {
            for record in common::records(dir.path(), chain) {
                let id = record.resource.unwrap().id;
                assert!(stored.insert(id.clone()), "seed {seed}: {id} is stored twice");
            }
        }
        for id in &acknowledged {
            assert!(stored.contains(id), "seed {seed}: acknowledged {id} is missing");
        }
        assert_eq!(
            stored.len(),
            emitted.len(),
            "seed {seed}: nothing is lost once the store recovers"
        );
        assert_eq!(report.chains.iter().map(|c| c.count).sum::<u64>(), emitted.len() as u64);
    }
    // The faults did hit: flushes failed while the store did.
    assert!(failed_flushes >= rounds as usize, "{failed_flushes} failed flushes");
}
