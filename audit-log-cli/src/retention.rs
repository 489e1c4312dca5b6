//! `audit retention`: purges records older than their tenant's policy, in whole units (file
//! segments, table partitions, row ranges), each behind a purge seal so the rest of the chain
//! still verifies, and records an `audit_log.purge` event per chain first. `--dry-run` shows
//! what would go and why everything else stays.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use audit::Timestamp;
use audit::retention::{self, ChainRange, Policy, RetentionConfig, RetentionOutcome, record_into};
use serde::Serialize;

use crate::verify::plural;
use crate::{Error, is_broken_pipe, source};

/// The `--help` text after the options: the configuration file, by example (the very file
/// the tests use).
const LONG_HELP: &str = concat!(
    "\
STORE is a file store directory, sqlite://PATH or postgres://USER@HOST[:PORT]/DB[?schema=NAME].
What goes is whole units, oldest first: a file store's segment files (never a chain's newest),
a SQLite chain's oldest rows, a PostgreSQL month partition once every tenant in it may lose it.
Each chain's purge is recorded as an `audit_log.purge` event in that chain before anything is
removed, and a purge seal keeps the rest of the chain verifiable (`audit verify STORE`).
A file store must not have a writer running during a purge (the store's lock is taken).

Presets (--preset): soc2 (365 days), hipaa (2192 days), pci_dss (365 days, 92 of them hot),
seven_years (2557 days).

The --config FILE is TOML:

",
    include_str!("../tests/fixtures/retention.toml"),
    "
Examples:
  audit retention --config retention.toml --dry-run /var/lib/myapp/audit
  audit retention --preset soc2 --hold globex sqlite:///var/lib/myapp/audit.db"
);

/// Arguments of `audit retention`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("policy").required(true).args(["config", "preset"])),
    after_help = "The --config file is TOML; see --help for an example. Exit status: 0 done, 2 error.",
    after_long_help = LONG_HELP,
)]
pub struct RetentionArgs {
    /// The store: a file store directory, sqlite://PATH or postgres://... (see --help).
    #[arg(value_name = "STORE")]
    store: PathBuf,
    /// The retention configuration: a TOML file with a default policy, per-tenant policies
    /// and legal holds (example in --help).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// One standard policy for every tenant, instead of a --config file.
    #[arg(long, value_enum, value_name = "PRESET")]
    preset: Option<Preset>,
    /// Also put TENANT on legal hold for this run (repeatable).
    #[arg(long = "hold", value_name = "TENANT")]
    holds: Vec<String>,
    /// Show what would be purged and why the rest stays; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Count ages back from TIME instead of the current time: RFC 3339 or a date.
    #[arg(long, value_name = "TIME", value_parser = Timestamp::parse)]
    now: Option<Timestamp>,
    /// Print the plan and what was done as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// The `--preset` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Preset {
    /// SOC 2: one year.
    Soc2,
    /// HIPAA: six years.
    Hipaa,
    /// PCI DSS: one year, the last three months at hand.
    #[value(name = "pci_dss", alias = "pci-dss")]
    PciDss,
    /// Seven years.
    #[value(name = "seven_years", alias = "seven-years")]
    SevenYears,
}

impl Preset {
    fn policy(self) -> Policy {
        match self {
            Preset::Soc2 => Policy::soc2(),
            Preset::Hipaa => Policy::hipaa(),
            Preset::PciDss => Policy::pci_dss(),
            Preset::SevenYears => Policy::seven_years(),
        }
    }
}

/// `--json` output.
#[derive(Serialize)]
struct JsonOutcome<'a> {
    dry_run: bool,
    #[serde(flatten)]
    outcome: &'a RetentionOutcome,
}

/// Runs `audit retention`.
pub fn run(args: &RetentionArgs) -> Result<ExitCode, Error> {
    let mut config = match (&args.config, args.preset) {
        (Some(path), _) => load_config(path)?,
        (None, Some(preset)) => RetentionConfig::new(preset.policy()),
        (None, None) => return Err("give --config FILE or --preset".into()),
    };
    config.legal_holds.extend(args.holds.iter().cloned());
    let now = args.now.unwrap_or_else(Timestamp::now);
    let location = source::location(&args.store)?;
    let mut store = source::open_retention(&location, args.dry_run)?;
    let chains = store.source.chains()?;
    for hold in &config.legal_holds {
        if !chains.contains(hold) {
            eprintln!(
                "note: tenant `{hold}` is on legal hold but has no records in {}",
                store.source.describe()
            );
        }
    }
    let outcome = match store.recorder.as_mut() {
        Some(recorder) => retention::run(
            store.target.as_mut(),
            &config,
            now,
            false,
            &mut record_into(recorder.as_mut()),
        )?,
        None => retention::run(store.target.as_mut(), &config, now, true, &mut |_| Ok(()))?,
    };

    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = if args.json {
        let json = JsonOutcome {
            dry_run: args.dry_run,
            outcome: &outcome,
        };
        serde_json::to_writer_pretty(&mut out, &json)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write_text(&mut out, &config, &chains, &outcome, args.dry_run)
    };
    if let Err(e) = written.and_then(|()| out.flush())
        && !is_broken_pipe(&e)
    {
        return Err(format!("writing the report: {e}").into());
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a TOML configuration; errors name the file, line and column.
fn load_config(path: &Path) -> Result<RetentionConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str::<RetentionConfig>(&text).map_err(|e| {
        let message = e.message().trim_end();
        match e.span() {
            Some(span) => {
                let (line, column) = line_column(&text, span.start);
                format!("{}:{line}:{column}: {message}", path.display()).into()
            }
            None => format!("{}: {message}", path.display()).into(),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    (line, column)
}

/// The text report: the store and time, one line per chain (what goes, or why nothing does),
/// the units that stay although old and why, the units removed, then the verdict.
fn write_text(
    out: &mut impl Write,
    config: &RetentionConfig,
    chains: &[String],
    outcome: &RetentionOutcome,
    dry_run: bool,
) -> io::Result<()> {
    let plan = &outcome.plan;
    let mode = if dry_run { " (dry run: nothing is removed)" } else { "" };
    writeln!(out, "retention of {} at {}{mode}", plan.store, plan.now)?;
    let ranges: BTreeMap<String, ChainRange> = plan.by_chain().into_iter().map(|r| (r.chain.clone(), r)).collect();
    let mut names: Vec<&String> = chains.iter().chain(ranges.keys()).collect();
    names.sort();
    names.dedup();
    let verb = if dry_run { "would purge" } else { "purged" };
    for chain in names {
        let policy = config.policy_for(chain);
        let rule = format!(
            "policy `{}`, {} days: records before {} may go",
            policy.name,
            policy.retain_days,
            policy.cutoff(plan.now)
        );
        let line = match ranges.get(chain) {
            Some(r) => format!(
                "{verb} seq {}..={} ({}, {} to {}) under {rule}",
                r.first_seq,
                r.last_seq,
                plural(r.records(), "record"),
                r.oldest,
                r.newest
            ),
            None if config.legal_holds.contains(chain) => format!("kept whole: on legal hold ({rule})"),
            None => format!("nothing to purge under {rule}"),
        };
        writeln!(out, "chain `{chain}`: {line}")?;
    }
    for blocked in &plan.blocked {
        writeln!(out, "stays: {}: {}", blocked.unit, blocked.reason)?;
    }
    for unit in &outcome.units_removed {
        writeln!(out, "removed: {unit}")?;
    }
    let records = plural(plan.records(), "record");
    let units = plural(plan.units.len() as u64, "unit");
    let in_chains = plural(ranges.len() as u64, "chain");
    if dry_run {
        writeln!(
            out,
            "DRY RUN: would remove {units} ({records} in {in_chains}); nothing was changed"
        )
    } else if plan.is_empty() {
        writeln!(out, "OK: nothing to purge")
    } else {
        writeln!(
            out,
            "OK: removed {} ({records} in {in_chains}), each chain's purge recorded as `{}` and sealed; \
             the chains now start after their purge seals",
            plural(outcome.units_removed.len() as u64, "unit"),
            retention::PURGE_ACTION
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("retention.toml");
        std::fs::write(&path, include_str!("../tests/fixtures/retention.toml")).unwrap();
        let config = load_config(&path).unwrap();
        assert_eq!(config.default, Policy::soc2());
        assert_eq!(config.policy_for("initech").name, "hipaa");
        assert_eq!(config.policy_for("hooli").hot_days, Some(92));
        assert!(config.legal_holds.contains("globex"));
    }

    #[test]
    fn errors_name_line_and_column() {
        let text = "legal_hold = [\"globex\"]\n[default]\nname = \"x\"\nretain_days = 1\n";
        assert_eq!(line_column(text, text.find("retain").unwrap()), (4, 1));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(&path, text).unwrap();
        let e = load_config(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:1:1: unknown field `legal_hold`", path.display())),
            "{e}"
        );
    }
}
