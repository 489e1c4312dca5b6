//! Errors of the runtime.

use std::path::PathBuf;

/// Why an event could not be recorded, or an audited action was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The failure mode is [`FailureMode::Refuse`](crate::FailureMode::Refuse) and no healthy
    /// audit sink is installed: the action was not performed.
    #[error("refused: no healthy audit sink is installed, so this audited action may not run")]
    NoSink,
    /// The event could not be handed to a healthy audit sink.
    #[error("audit event `{action}` was not delivered: {reason}")]
    Undelivered {
        /// The action of the lost event.
        action: String,
        /// Why: no audit layer for this thread, the queue stayed full, the store is failing.
        reason: String,
    },
    /// The action is not in the vocabulary compiled into the binary (see
    /// [`install_vocabulary`](crate::install_vocabulary)), under
    /// [`FailureMode::Refuse`](crate::FailureMode::Refuse).
    #[error("{message}")]
    UnknownAction {
        /// The action as given.
        action: String,
        /// What is wrong, with a suggestion when one is close.
        message: String,
    },
    /// The writer failed to make events durable.
    #[error("audit writer failed: {0}")]
    Writer(#[from] StoreError),
    /// Events handed to this writer since the previous flush were lost (refused while the
    /// store was failing, or timed out on a full queue); every other one is durable.
    #[error("{count} audit events emitted since the last flush were lost (see stderr and `audit::undelivered` errors)")]
    Lost {
        /// How many.
        count: u64,
    },
    /// The wait ran out before the writer answered (see
    /// [`WriterGuard::flush_timeout`](crate::WriterGuard::flush_timeout)).
    #[error("the audit writer did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The writer thread is gone (shut down or crashed).
    #[error("audit writer is not running")]
    WriterGone,
}

/// An I/O or integrity problem in a store, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An operating-system error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another process holds the store's lock.
    #[error("{}: another process is writing to this audit store", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// Existing data cannot be continued safely.
    #[error("{}:{line}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The store's configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The store refuses a record itself (its content, not a passing fault such as a full
    /// disk or a lost connection): retrying it cannot help. The writer sets such records
    /// aside ([`Store::set_aside`](crate::Store::set_aside)) and goes on with the others.
    #[error("chain `{chain}`: the store refuses the record: {reason}")]
    Rejected {
        /// The chain of the refused record.
        chain: String,
        /// Why, as the store says it.
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}
