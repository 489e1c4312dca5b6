//! `audit`: the operators' and auditors' command for logs written by the audit toolkit.
//!
//! - `audit verify PATH...` checks every hash, link, `seq` and seal (Contract 2 of DESIGN.md).
//! - `audit export PATH... --format jsonl|json|csv` writes a tenant's records by time range.
//! - `audit copy SRC DST` copies records between stores byte for byte, verifying them.
//! - `audit retention --config FILE STORE` purges what is older than each tenant's policy.
//! - `audit vocab` prints the action catalogue of `audit.toml`.
//!
//! Wherever a store is named, it may be a file store directory, `sqlite://PATH` or
//! `postgres://...` ([`source`] opens them).
//!
//! Exit status: 0 when all is well, 1 when verification found damage, 2 for usage and I/O
//! errors, so scripts can tell "the log is tampered with" from "the command could not run".

mod copy;
mod export;
mod retention;
mod source;
mod verify;
mod vocab;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status when verification found damage.
const EXIT_DAMAGE: u8 = 1;
/// Exit status for usage and I/O errors (clap uses the same for bad arguments).
const EXIT_ERROR: u8 = 2;

/// An error that stops a command: printed on stderr, exit status 2.
type Error = Box<dyn std::error::Error>;

/// Verify, export, copy and purge hash-chained audit logs (files, SQLite, PostgreSQL).
#[derive(Debug, Parser)]
#[command(name = "audit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every hash, link, seq and seal; exit 1 naming the first damage of each chain.
    Verify(verify::VerifyArgs),
    /// Write records filtered by tenant, time range, action or actor as JSONL, JSON or CSV.
    Export(export::ExportArgs),
    /// Copy records between stores byte for byte, verifying them; resumable and idempotent.
    Copy(copy::CopyArgs),
    /// Purge records older than each tenant's policy (or show what would go with --dry-run).
    Retention(retention::RetentionArgs),
    /// Print the action catalogue of `audit.toml` for an auditor.
    Vocab(vocab::VocabArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Verify(args) => verify::run(args),
        Command::Export(args) => export::run(args),
        Command::Copy(args) => copy::run(args),
        Command::Retention(args) => retention::run(args),
        Command::Vocab(args) => vocab::run(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("audit: error: {e}");
        ExitCode::from(EXIT_ERROR)
    })
}

/// True when writing failed only because the reader went away (`audit export | head`):
/// not worth an error message.
fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}
