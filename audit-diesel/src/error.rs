//! Errors of audited operations.

use audit_runtime::AuditError;

/// Why an audited operation, transaction or relay run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused the statement (including [`diesel::result::Error::NotFound`] when
    /// a single-row operation matched no row).
    #[error(transparent)]
    Database(#[from] diesel::result::Error),

    /// A single-row operation matched no row of `table`.
    #[error("audited {operation} on table `{table}` matched no row")]
    NotFound {
        /// The operation (`update`, `delete`).
        operation: &'static str,
        /// The table.
        table: String,
    },

    /// A single-row operation matched more than one row; nothing was changed.
    #[error(
        "audited {operation} on table `{table}` matched more than one row; nothing was changed (use the `_all` variant for many rows)"
    )]
    NotUnique {
        /// The operation (`update`, `delete`).
        operation: &'static str,
        /// The table.
        table: String,
    },

    /// A bulk operation matched more rows than its cap; nothing was changed.
    #[error(
        "audited {operation} on table `{table}` matched more than {cap} rows (the cap); nothing was changed: narrow the filter or raise the cap with `max_rows`"
    )]
    TooManyRows {
        /// The operation (`update_all`, `delete_all`).
        operation: &'static str,
        /// The table.
        table: String,
        /// The cap in force.
        cap: usize,
    },

    /// An update returned a row whose before-image is missing (SQLite pairs before and after
    /// by resource id, so an update that changes the primary key of many rows cannot be paired).
    #[error(
        "audited update on table `{table}`: row `{id}` has no before-image (was its primary key changed?); nothing was changed"
    )]
    Unpaired {
        /// The table.
        table: String,
        /// The resource id of the row after the update.
        id: String,
    },

    /// An audited operation was run outside an audited transaction while the connection is
    /// inside a plain diesel transaction: its events would be released before that transaction
    /// commits, so it is refused.
    #[error(
        "an audited operation or transaction was started inside a plain diesel transaction; use `Audited::transaction` for the outer transaction so that events are released only when it commits"
    )]
    UnauditedTransaction,

    /// The failure mode is [`FailureMode::Refuse`](audit_runtime::FailureMode::Refuse) and the
    /// event could not be recorded: no healthy audit sink is installed
    /// ([`AuditError::NoSink`]), or the action, given as a string, is not in the vocabulary
    /// compiled into the binary ([`AuditError::UnknownAction`]). Both are found before the
    /// change is made, which it then is not; if reported after a commit, the change was made
    /// and its event is reported as undelivered.
    #[error(transparent)]
    Audit(#[from] AuditError),

    /// An outbox row could not be read or written.
    #[error("audit outbox row `{event_id}`: {message}")]
    Outbox {
        /// The event id of the row.
        event_id: String,
        /// What is wrong.
        message: String,
    },

    /// The relay could not read the audit store to find events already delivered.
    #[error("audit relay: cannot read the audit store to deduplicate: {0}")]
    Store(#[from] audit_runtime::StoreError),
}
