//! Retention: how long each tenant's audit records are kept, and purging what is older.
//!
//! A [`RetentionConfig`] holds a default [`Policy`] (presets for SOC 2, HIPAA, PCI DSS and the
//! 7-year default), per-tenant overrides and legal holds. A store that can purge implements
//! [`RetentionTarget`]: [`plan`](RetentionTarget::plan) is the dry run, listing the whole
//! units (file segments, table partitions, row ranges) that would go;
//! [`purge`](RetentionTarget::purge) removes them, oldest first, each only after a purge
//! seal has recorded where the remaining chain resumes, so that the chain still verifies from
//! that point ([`verify`](crate::verify) accepts a chain that starts right after a purge seal,
//! and nothing else). [`run`] ties it together and records one audit event per purged chain
//! (action [`PURGE_ACTION`]) before anything is removed.
//!
//! Purges only ever remove a prefix of a chain: timestamps never decrease along a chain, so
//! the records older than a cutoff are its first ones. A legal hold on a tenant blocks every
//! unit that holds any of its records.
//!
//! ```
//! use audit_runtime::retention::{Policy, RetentionConfig, RetentionTarget, run};
//! use audit_runtime::store::file::FileRetention;
//! use audit_runtime::{AuditEvent, Category, FileStore, FileStoreOptions, Timestamp};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let day = 86_400_000_000i64;
//! let now = Timestamp::now();
//! // Tiny segments so that each old event sits in its own file.
//! let opts = FileStoreOptions { max_segment_bytes: 1, ..Default::default() };
//! let mut store = FileStore::with_options(dir.path(), opts)?;
//! for age_days in [800, 700, 10, 1] {
//!     let at = Timestamp::from_unix_micros(now.unix_micros() - age_days * day);
//!     audit_runtime::store::append_events(&mut store, [AuditEvent::new("user.login", Category::Authentication).tenant("acme").at(at)])?;
//! }
//! let config = RetentionConfig::new(Policy::soc2()); // one year
//! let mut target = FileRetention::open(dir.path())?;
//! let plan = target.plan(&config, now)?; // the dry run
//! assert_eq!(plan.records(), 2);
//! let outcome = run(&mut target, &config, now, false, &mut audit_runtime::retention::record_into(&mut store))?;
//! assert_eq!(outcome.purged.len(), 1);
//! drop(store);
//! let report = audit_runtime::verify::verify_paths(&[dir.path()], &Default::default())?;
//! assert!(report.is_ok(), "{:?}", report.damages().collect::<Vec<_>>());
//! assert_eq!(report.chains[0].first_seq, 3);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{AuditError, StoreError};
use crate::event::{Actor, AuditEvent, Category};
use crate::store::Store;
use crate::{ChainHash, Timestamp};

const DAY_MICROS: i64 = 86_400_000_000;

/// The action of the event that records a purge.
pub const PURGE_ACTION: &str = "audit_log.purge";

/// How long records are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// A misspelled key in a configuration file is an error, not a silently ignored setting.
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The policy's name, written in the purge event (`soc2`, `hipaa`, `pci-dss`, `default`).
    pub name: String,
    /// Records younger than this many days are kept.
    pub retain_days: u32,
    /// How many of the newest days must stay in the hot (queryable) store, when the
    /// standard asks for it (PCI DSS: 3 months). Informational: moving older records to a
    /// cold store is done with [`copy`](crate::copy::copy) before they are purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_days: Option<u32>,
}

impl Policy {
    /// A named policy keeping records `retain_days` days.
    pub fn days(name: impl Into<String>, retain_days: u32) -> Self {
        Policy {
            name: name.into(),
            retain_days,
            hot_days: None,
        }
    }

    /// SOC 2: one year.
    pub fn soc2() -> Self {
        Policy::days("soc2", 365)
    }

    /// HIPAA: six years (45 CFR 164.316(b)(2)).
    pub fn hipaa() -> Self {
        Policy::days("hipaa", 6 * 365 + 2)
    }

    /// PCI DSS (requirement 10.5.1): one year, the last three months immediately available.
    pub fn pci_dss() -> Self {
        Policy {
            hot_days: Some(92),
            ..Policy::days("pci-dss", 365)
        }
    }

    /// The default: seven years.
    pub fn seven_years() -> Self {
        Policy::days("default", 7 * 365 + 2)
    }

    /// A preset by name: `soc2`, `hipaa`, `pci-dss` (or `pci`), `default` (or `7y`).
    pub fn preset(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "soc2" | "soc-2" => Some(Policy::soc2()),
            "hipaa" => Some(Policy::hipaa()),
            "pci-dss" | "pci" | "pcidss" => Some(Policy::pci_dss()),
            "default" | "7y" | "seven-years" => Some(Policy::seven_years()),
            _ => None,
        }
    }

    /// Records strictly before this time may be purged at `now`.
    pub fn cutoff(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_unix_micros(
            now.unix_micros()
                .saturating_sub(i64::from(self.retain_days) * DAY_MICROS),
        )
    }
}

/// Which policy applies to which chain, and which chains are on legal hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// A misspelled `legal_holds` must not be ignored: it would purge records on hold.
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// The policy of every chain without an override.
    pub default: Policy,
    /// Per-tenant (chain key) overrides.
    #[serde(default)]
    pub tenants: BTreeMap<String, Policy>,
    /// Chains on legal hold: nothing of theirs is purged, whatever their policy.
    #[serde(default)]
    pub legal_holds: BTreeSet<String>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig::new(Policy::seven_years())
    }
}

impl RetentionConfig {
    /// Every chain under `default`.
    pub fn new(default: Policy) -> Self {
        RetentionConfig {
            default,
            tenants: BTreeMap::new(),
            legal_holds: BTreeSet::new(),
        }
    }

    /// Gives `tenant` its own policy.
    pub fn tenant(mut self, tenant: impl Into<String>, policy: Policy) -> Self {
        self.tenants.insert(tenant.into(), policy);
        self
    }

    /// Puts `tenant` on legal hold.
    pub fn hold(mut self, tenant: impl Into<String>) -> Self {
        self.legal_holds.insert(tenant.into());
        self
    }

    /// The policy of `chain`.
    pub fn policy_for(&self, chain: &str) -> &Policy {
        self.tenants.get(chain).unwrap_or(&self.default)
    }

    /// Records of `chain` strictly before the returned time may be purged at `now`; `Err`
    /// says why nothing may (a legal hold).
    pub fn cutoff_for(&self, chain: &str, now: Timestamp) -> Result<Timestamp, String> {
        if self.legal_holds.contains(chain) {
            return Err(format!("tenant `{chain}` is on legal hold"));
        }
        Ok(self.policy_for(chain).cutoff(now))
    }
}

/// The part of one chain a unit holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainRange {
    /// The chain key.
    pub chain: String,
    /// The first seq in the unit.
    pub first_seq: u64,
    /// The last seq in the unit.
    pub last_seq: u64,
    /// The hash of the last record (what the purge seal records).
    pub last_hash: ChainHash,
    /// Timestamp of the first record in the unit.
    pub oldest: Timestamp,
    /// Timestamp of the last record in the unit.
    pub newest: Timestamp,
}

impl ChainRange {
    /// Records in the range.
    pub fn records(&self) -> u64 {
        self.last_seq + 1 - self.first_seq
    }
}

/// A unit that goes whole: a segment file, a partition, or a row range of one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PurgeUnit {
    /// The file, partition or range.
    pub name: String,
    /// What it holds, per chain.
    pub chains: Vec<ChainRange>,
}

/// A unit that stays although it is old, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Blocked {
    /// The file, partition or range.
    pub unit: String,
    /// Why (legal hold, a tenant's longer policy, the newest segment of a chain).
    pub reason: String,
}

/// What a purge would remove (a dry run), oldest unit first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    /// The store.
    pub store: String,
    /// The time the cutoffs were computed from.
    pub now: Timestamp,
    /// Units that would go.
    pub units: Vec<PurgeUnit>,
    /// Old units that stay, and why.
    pub blocked: Vec<Blocked>,
}

impl RetentionPlan {
    /// True when nothing would go.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Records that would go.
    pub fn records(&self) -> u64 {
        self.units.iter().flat_map(|u| &u.chains).map(ChainRange::records).sum()
    }

    /// Per chain, the whole range that would go (first unit's first seq to the last unit's
    /// last seq), in chain order.
    pub fn by_chain(&self) -> Vec<ChainRange> {
        let mut out: BTreeMap<&str, ChainRange> = BTreeMap::new();
        for r in self.units.iter().flat_map(|u| &u.chains) {
            out.entry(&r.chain)
                .and_modify(|acc| {
                    if r.last_seq > acc.last_seq {
                        acc.last_seq = r.last_seq;
                        acc.last_hash = r.last_hash;
                        acc.newest = r.newest;
                    }
                    if r.first_seq < acc.first_seq {
                        acc.first_seq = r.first_seq;
                        acc.oldest = r.oldest;
                    }
                })
                .or_insert_with(|| r.clone());
        }
        out.into_values().collect()
    }
}

/// A store whose old records can be purged in whole units.
pub trait RetentionTarget {
    /// What a purge at `now` would remove: the dry run. Changes nothing.
    fn plan(&mut self, config: &RetentionConfig, now: Timestamp) -> Result<RetentionPlan, StoreError>;

    /// Removes the units of `plan` (made by [`plan`](RetentionTarget::plan) on this store),
    /// oldest first, each after the purge seals of its chains are durable. Returns the units
    /// removed.
    fn purge(&mut self, plan: &RetentionPlan) -> Result<Vec<String>, StoreError>;
}

/// What [`run`] did.
#[derive(Clone, Debug, Serialize)]
pub struct RetentionOutcome {
    /// The plan it followed (all of it is the dry run's answer).
    pub plan: RetentionPlan,
    /// Per chain, what was purged (empty on a dry run).
    pub purged: Vec<ChainRange>,
    /// Units removed (empty on a dry run).
    pub units_removed: Vec<String>,
}

/// Why retention stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// Reading or changing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The purge's own audit event could not be recorded, so nothing was purged.
    #[error("the purge was not started: its audit event could not be recorded: {0}")]
    Event(#[from] AuditError),
}

/// The audit event that records the purge of `range` under `policy`: action
/// [`PURGE_ACTION`] (category admin, actor `system:retention`), in the purged chain itself so
/// a tenant's export shows it, with the purged range in `changes`.
pub fn purge_event(range: &ChainRange, policy: &Policy, held_count: usize) -> AuditEvent {
    let mut event = AuditEvent::new(PURGE_ACTION, Category::Admin)
        .actor(Actor::system("retention"))
        .resource("audit_chain", &range.chain)
        .context("retention_policy", policy.name.clone())
        .context("retain_days", policy.retain_days.to_string())
        .changes(
            Some(serde_json::json!({
                "first_seq": range.first_seq,
                "through_seq": range.last_seq,
                "records": range.records(),
                "oldest": range.oldest.to_string(),
                "newest": range.newest.to_string(),
            })),
            Some(serde_json::json!({ "first_seq": range.last_seq + 1, "blocked_units": held_count })),
        );
    if range.chain != crate::DEFAULT_CHAIN {
        event = event.tenant(range.chain.clone());
    }
    event
}

/// Plans and, unless `dry_run`, purges: records one [`purge_event`] per chain through
/// `record` first (nothing is removed if that fails), then has the target seal and remove.
pub fn run(
    target: &mut dyn RetentionTarget,
    config: &RetentionConfig,
    now: Timestamp,
    dry_run: bool,
    record: &mut dyn FnMut(AuditEvent) -> Result<(), AuditError>,
) -> Result<RetentionOutcome, RetentionError> {
    let plan = target.plan(config, now)?;
    if dry_run || plan.is_empty() {
        return Ok(RetentionOutcome {
            plan,
            purged: Vec::new(),
            units_removed: Vec::new(),
        });
    }
    let purged = plan.by_chain();
    for range in &purged {
        record(purge_event(range, config.policy_for(&range.chain), plan.blocked.len()))?;
    }
    let units_removed = target.purge(&plan)?;
    Ok(RetentionOutcome {
        plan,
        purged,
        units_removed,
    })
}

/// A recorder for [`run`] that appends each event to `store` at once (see
/// [`append_events`](crate::store::append_events)), for a store no writer is using here.
pub fn record_into<S: Store + ?Sized>(store: &mut S) -> impl FnMut(AuditEvent) -> Result<(), AuditError> + '_ {
    move |event| {
        crate::store::append_events(store, [event])
            .map(|_| ())
            .map_err(AuditError::Writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_overrides() {
        assert_eq!(Policy::preset("SOC2").unwrap().retain_days, 365);
        assert_eq!(Policy::preset("pci").unwrap().hot_days, Some(92));
        assert!(Policy::preset("hipaa").unwrap().retain_days >= 6 * 365);
        assert!(Policy::preset("nope").is_none());
        let cfg = RetentionConfig::default().tenant("acme", Policy::soc2()).hold("globex");
        let now = Timestamp::parse("2030-01-01").unwrap();
        assert_eq!(
            cfg.cutoff_for("acme", now).unwrap(),
            Timestamp::parse("2029-01-01").unwrap()
        );
        assert!(cfg.cutoff_for("globex", now).unwrap_err().contains("legal hold"));
        assert_eq!(cfg.policy_for("initech").name, "default");
        let text = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<RetentionConfig>(&text).unwrap(), cfg);
    }
}
