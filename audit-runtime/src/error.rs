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
    #[error("audit event `{action}` was not delivered: no healthy audit sink took it")]
    Undelivered {
        /// The action of the lost event.
        action: String,
    },
    /// The writer failed to make events durable.
    #[error("audit writer failed: {0}")]
    Writer(#[from] StoreError),
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
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}
