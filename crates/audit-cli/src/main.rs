//! `audit`: the operators' and auditors' command for logs written by the audit toolkit.
//!
//! - `audit verify PATH...` checks every hash, link, `seq` and seal (Contract 2 of DESIGN.md).
//! - `audit export PATH... --format jsonl|json|csv` writes a tenant's records by time range.
//!
//! Exit status: 0 when all is well, 1 when verification found damage, 2 for usage and I/O
//! errors, so scripts can tell "the log is tampered with" from "the command could not run".

mod export;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status when verification found damage.
const EXIT_DAMAGE: u8 = 1;
/// Exit status for usage and I/O errors (clap uses the same for bad arguments).
const EXIT_ERROR: u8 = 2;

/// An error that stops a command: printed on stderr, exit status 2.
type Error = Box<dyn std::error::Error>;

/// Verify and export hash-chained audit logs.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Verify(args) => verify::run(args),
        Command::Export(args) => export::run(args),
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
