//! Diesel integration of the audit toolkit: the before and after state of every insert, update
//! and delete, captured in the same transaction as the change, redacted by the model, and
//! released to the audit log only when the transaction commits.
//!
//! ```
//! use audit::AuditModel;
//! use audit_diesel::AuditedExt;
//! use audit_runtime::{Actor, AuditLayer, AuditScope, AuthMethod, FileStore};
//! use diesel::prelude::*;
//! use tracing_subscriber::prelude::*;
//!
//! diesel::table! {
//!     customers (id) {
//!         id -> Integer,
//!         name -> Text,
//!         plan -> Text,
//!         ssn -> Text,
//!     }
//! }
//!
//! #[derive(Queryable, Selectable, AuditModel, Debug)]
//! #[diesel(table_name = customers)]
//! #[audit(resource = "customer")]
//! struct Customer {
//!     id: i32,
//!     name: String,
//!     plan: String,
//!     #[audit(redact)]
//!     ssn: String,
//! }
//!
//! #[derive(Insertable)]
//! #[diesel(table_name = customers)]
//! struct NewCustomer<'a> {
//!     name: &'a str,
//!     plan: &'a str,
//!     ssn: &'a str,
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path())?).build()?;
//! let _default = tracing_subscriber::registry().with(layer).set_default();
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! diesel::sql_query("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL, ssn TEXT NOT NULL)")
//!     .execute(&mut conn)?;
//!
//! let scope = AuditScope::new().actor(Actor::user("usr_1", AuthMethod::Sso)).tenant("acme");
//! scope.in_scope(|| -> Result<(), audit_diesel::Error> {
//!     conn.audited().transaction(|tx| {
//!         let ada: Customer = tx.insert(customers::table, NewCustomer { name: "Ada", plan: "free", ssn: "078-05-1120" })?;
//!         let change = tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))?;
//!         assert_eq!(change.changed, ["plan"]);
//!         Ok(())
//!     })
//! })?;
//! guard.flush()?; // both events are in the log, chained, with the SSN redacted
//! # let report = audit_runtime::verify::verify_paths(&[dir.path()], &Default::default())?;
//! # assert_eq!(report.chains[0].count, 2);
//! # Ok(()) }
//! ```
//!
//! # The operations
//!
//! Diesel's `UpdateStatement` cannot be taken apart once built, so an audited operation takes
//! what `diesel::update` / `diesel::delete` / `diesel::insert_into` would take, plus the
//! changeset, and the model type to capture (inferred from the result, or with a turbofish):
//!
//! | diesel | audited |
//! |---|---|
//! | `insert_into(customers).values(v).get_result(conn)` | `db.insert(customers, v)` |
//! | `update(customers.find(id)).set(c).execute(conn)` | `db.update(customers.find(id), c)` |
//! | `update(customers.filter(f)).set(c).execute(conn)` | `db.update_all(customers.filter(f), c)` |
//! | `delete(customers.find(id)).execute(conn)` | `db.delete(customers.find(id))` |
//! | `delete(customers.filter(f)).execute(conn)` | `db.delete_all(customers.filter(f))` |
//!
//! where `db` is `conn.audited()` ([`AuditedExt`]) or the `tx` of
//! [`Audited::transaction`]. The model (`Customer` above) derives diesel's `Queryable` and
//! `Selectable` and the toolkit's `AuditModel`; its selection must include the primary key.
//! Events are named `<resource>.create`, `.update`, `.delete`, or what
//! [`Audited::action`] says (`tx.action("billing.update").update(...)`).
//!
//! # How the before-state is read
//!
//! - PostgreSQL: one statement,
//!   `WITH old AS (SELECT ... FOR UPDATE) UPDATE ... FROM old WHERE <pk> = old.<pk> RETURNING old.*, <new>`:
//!   the before-image is the row as locked, so a concurrent update either finishes first and is
//!   seen, or waits. Deletes use `DELETE ... USING old ... RETURNING`.
//! - SQLite: `SELECT` then `UPDATE ... RETURNING` inside `BEGIN IMMEDIATE`, which takes the
//!   write lock before the read. The read has no `LIMIT` (SQLite re-prepares a statement with
//!   a bound `LIMIT` on every run); it stops after `max_rows + 1` rows instead, and its
//!   prepared statement is cached by type.
//! - PostgreSQL with the outbox: a single-row update is still one statement, whose
//!   data-modifying CTE also inserts the outbox row, its snapshots built by the database from
//!   the old and new row. This is used only for models for which a probe has proven that the
//!   database builds exactly the model's snapshots (redacted members as the constant, other
//!   members from the one column whose values they show, column types whose JSON is the same
//!   in PostgreSQL and serde); every other model, and the bulk and
//!   [`Snapshots::Changed`]/[`skip_unchanged`](Audited::skip_unchanged) forms, take `BEGIN`,
//!   the statement above, the outbox insert and `COMMIT`. Each event the database writes is
//!   compared with the model's; a difference fails the operation.
//!
//! The bulk forms lock at most `max_rows + 1` rows and change nothing when more match, so a
//! filter that is wider than intended fails instead of logging (and changing) a million rows.
//!
//! # Transactions
//!
//! Outside a transaction each operation is atomic on its own and its events are released when
//! it returns. [`Audited::transaction`] owns the transaction (diesel has no commit hook):
//! events are released when the outermost transaction commits, nested transactions are
//! savepoints whose events are dropped if they roll back. Starting audited work inside a plain
//! `conn.transaction(...)` is refused ([`Error::UnauditedTransaction`]), since its events would
//! be released before that transaction commits. With [`Audited::outbox`], events are rows
//! committed with the change and a [`Relay`] delivers them exactly once (see [`outbox`]).
//!
//! The ambient [`AuditScope`](audit_runtime::AuditScope) (actor, tenant, request context) is
//! captured when the operation runs, as for `#[audited]`.

mod audited;
mod capture;
mod error;
pub mod outbox;
mod plan;
mod sql;

pub use audited::{Audited, Change, DEFAULT_MAX_ROWS, Snapshots, WithAction};
pub use capture::{AuditConnection, DeleteTarget, InsertValues, Limit, UpdateTarget};
pub use error::Error;
pub use outbox::Relay;
pub use sql::{AuditBackend, Dialect};

/// `conn.audited()` on any supported diesel connection.
pub trait AuditedExt: AuditConnection + Sized {
    /// This connection with audited operations; see [`Audited`].
    fn audited(&mut self) -> Audited<'_, Self> {
        Audited::new(self)
    }
}

impl<C: AuditConnection> AuditedExt for C {}

/// Runs `f` in an audited transaction on `conn`: shorthand for
/// `Audited::new(conn).transaction(f)`.
pub fn transaction<C, T, E, F>(conn: &mut C, f: F) -> Result<T, E>
where
    C: AuditConnection,
    F: FnOnce(&mut Audited<'_, C>) -> Result<T, E>,
    E: From<Error>,
{
    Audited::new(conn).transaction(f)
}
