//! Diesel integration of the audit toolkit: the before and after state of every insert, update
//! and delete, captured in the same transaction as the change, redacted by the model, and
//! released to the audit log only when the transaction commits. For diesel's connections and
//! for diesel-async's (see [diesel-async](#diesel-async)).
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
//! // `customer.create`, `customer.update` and `billing.update` are declared in audit.toml.
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
//! let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path())?)
//!     .vocabulary(audit::vocabulary!()) // actions given as strings are checked against it
//!     .build()?;
//! tracing_subscriber::registry().with(layer).init(); // global: every thread records
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! diesel::sql_query("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL, ssn TEXT NOT NULL)")
//!     .execute(&mut conn)?;
//!
//! let scope = AuditScope::new().actor(Actor::user("usr_1", AuthMethod::Sso)).tenant("acme");
//! scope.in_scope(|| -> Result<(), audit_diesel::Error> {
//!     conn.audited().transaction(|tx| {
//!         // Recorded as `customer.create`, the model's default action.
//!         let ada: Customer = tx.insert(customers::table, NewCustomer { name: "Ada", plan: "free", ssn: "078-05-1120" })?;
//!         // Recorded as `billing.update`, checked against audit.toml when this compiles.
//!         let change = tx
//!             .action(audit::action!("billing.update"))
//!             .update::<Customer, _, _>(customers::table.find(ada.id), customers::plan.eq("pro"))?;
//!         assert_eq!(change.changed, ["plan"]);
//!         // A change of the redacted SSN is named too; its value never is.
//!         let change = tx.update::<Customer, _, _>(customers::table.find(ada.id), customers::ssn.eq("219-09-9999"))?;
//!         assert_eq!(change.changed, ["ssn"]);
//!         Ok(())
//!     })
//! })?;
//! guard.flush()?; // the three events are in the log, chained, the SSN as a keyed fingerprint
//! # let report = audit_runtime::verify::verify_paths(&[dir.path()], &Default::default())?;
//! # assert_eq!(report.chains[0].count, 3);
//! # use audit_runtime::query::{Query, RecordSource};
//! # let mut log = Vec::new();
//! # for r in audit_runtime::FileSource::open(dir.path())?.query(&Query::new())? { log.extend_from_slice(&r?.line); }
//! # let log = String::from_utf8(log)?;
//! # assert!(log.contains("[redacted:hmac-sha256:") && !log.contains("078-05-1120") && !log.contains("219-09-9999"));
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
//!
//! # Actions
//!
//! An operation is recorded under the action [`Audited::action`] names, or else the model's:
//!
//! - `tx.action(audit::action!("billing.update"))`: a typed action, checked against
//!   `audit.toml` when the code compiles (a typo is a compile error with a "did you mean"),
//!   with the category the vocabulary gives it.
//! - `tx.action("billing.update")`: a name, checked when the operation runs against the
//!   vocabulary compiled into the binary (`audit::vocabulary!()`, installed with
//!   `AuditLayerBuilder::vocabulary` or [`audit_runtime::install_vocabulary`]), which also
//!   gives its category. Under [`FailureMode::Refuse`](audit_runtime::FailureMode::Refuse) an
//!   unknown name fails the operation with [`Error::Audit`] **before** it changes anything
//!   (an enclosing transaction rolls back with the error); under `Warn` it is recorded and
//!   reported loudly (stderr, the `audit::vocabulary` target, the runtime's counter).
//! - none: the model's default, `<resource>.create`, `.update`, `.delete` (or the names the
//!   model gives with `#[audit(update = "billing.update")]`). `#[derive(AuditModel)]` looks
//!   them up in `audit.toml`: a declared one is typed (never checked again). One that is not
//!   declared is a compile error wherever an operation would be recorded under it, naming the
//!   action and the fix (declare it, or name one with `.action(audit::action!("..."))`); it is
//!   found when the operation is instantiated, so `cargo build` and `cargo test` report it,
//!   `cargo check` does not. The defaults of a hand-written `AuditModel` impl are names,
//!   checked at run time as above.
//!
//! # Redacted fields
//!
//! A field marked `#[audit(redact)]` is written in `changes.before` / `changes.after` as a
//! keyed fingerprint, `"[redacted:hmac-sha256:<32 hex digits>]"`: HMAC-SHA256 under the
//! deployment's key ([`audit_runtime::set_fingerprint_key`] or `AUDIT_FINGERPRINT_KEY`) over
//! the value's JSON, never the value and never a plain hash of it. A change of a redacted
//! field therefore shows: its fingerprint changes, and it is named in [`Change::changed`] and
//! in the record's changed fields like any other field.
//!
//! # Inside `#[audited]` calls: one change, one record
//!
//! An audited operation inside an `#[audited]` fn contributes its change to that call's event
//! instead of recording an event of its own, so that one change gives one record:
//!
//! ```ignore
//! #[audit::audited(action = "billing.update", resource = "customer", id = id)]
//! fn upgrade(conn: &mut PgConnection, id: i32) -> Result<(), audit_diesel::Error> {
//!     // One record: the call's `billing.update`, with this update's before, after and
//!     // changed fields.
//!     conn.audited().update::<Customer, _, _>(customers::table.find(id), customers::plan.eq("pro"))?;
//!     Ok(())
//! }
//! ```
//!
//! The rule, applied when the change is released (when its transaction commits; a change
//! rolled back is never offered, and the call records no change):
//!
//! - the first change the call's body commits whose resource type is the call's `resource`
//!   (any type when the call names none) goes into the call's event;
//! - every other change the call makes (a second one, another resource type, the other rows
//!   of an `update_all`) is recorded as an event of its own, with the call's actor, tenant and
//!   request context, as without `#[audited]`;
//! - a change committed after the call returned (the call ran inside an audited transaction
//!   its caller commits) cannot be in the call's event, which is already recorded: it is
//!   recorded as an event of its own;
//! - with the outbox ([`Audited::outbox`]) the change is recorded by the [`Relay`], later and
//!   possibly in another process, outside the call: it is always an event of its own (with the
//!   call's actor, tenant and request id, to correlate the two), and the call's event has no
//!   change. The call cannot carry it without losing what the outbox is for: an event that
//!   survives a crash between the commit and the delivery.
//!
//! The change a call takes is the call's to record: its event's outcome is the call's (a call
//! that fails after its change committed is recorded as a failure carrying that change).
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
//!   database builds exactly the model's snapshots (redacted members as fingerprints the
//!   database computes with `sha256()` from the padded key, so that their values are never
//!   read out; other members from the one column whose values they show; column types whose
//!   JSON is the same in PostgreSQL and serde: integers, booleans, text); every other model,
//!   and the bulk and [`Snapshots::Changed`]/[`skip_unchanged`](Audited::skip_unchanged)
//!   forms, take `BEGIN`, the statement above, the outbox insert and `COMMIT`, capturing in
//!   Rust. Each event the database writes is compared with the model's; a difference fails
//!   the operation. For a model with redacted fields, the padded fingerprint key is a
//!   parameter of that statement, from which the key can be derived: keep statement
//!   parameters out of the server's log (`log_parameter_max_length = 0` for the application's
//!   role), or whoever reads that log can test guesses against the fingerprints of past
//!   values in the audit log.
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
//!
//! # diesel-async
//!
//! With the feature `async` (on by default; `diesel-async` in the facade), the same
//! operations, options and rules work on diesel-async's `AsyncPgConnection`, plain or pooled by
//! deadpool or bb8 ([`AsyncAuditedExt::audited`], [`AsyncAudited`]): the operations are awaited,
//! [`AsyncAudited::transaction`] takes an async closure, and every future is `Send`, so they run
//! in tokio tasks and axum handlers. Inside an async `#[audited]` fn, a change is the call's as
//! above (the call is entered on every poll of its body, so the change is offered in the poll
//! that sees its commit complete). The outbox has [`Relay::run_once_async`] and
//! [`Relay::drain_async`].
//!
//! ```no_run
//! use audit::AuditModel;
//! use audit_diesel::AsyncAuditedExt;
//! use diesel::prelude::*;
//! use diesel_async::AsyncPgConnection;
//! use diesel_async::pooled_connection::AsyncDieselConnectionManager;
//! use diesel_async::pooled_connection::deadpool::Pool;
//!
//! diesel::table! {
//!     customers (id) {
//!         id -> BigInt,
//!         plan -> Text,
//!         card_number -> Text,
//!     }
//! }
//!
//! #[derive(Queryable, Selectable, AuditModel)]
//! #[diesel(table_name = customers)]
//! #[audit(resource = "customer")]
//! struct Customer {
//!     id: i64,
//!     plan: String,
//!     #[audit(redact)]
//!     card_number: String,
//! }
//!
//! type Error = Box<dyn std::error::Error + Send + Sync>;
//!
//! // One record per call: the call's `billing.update`, with the before, after and changed
//! // fields of the update it committed; none if the transaction rolled back.
//! #[audit::audited(action = "billing.update", resource = "customer", id = id)]
//! async fn upgrade(pool: &Pool<AsyncPgConnection>, id: i64) -> Result<(), Error> {
//!     let mut conn = pool.get().await?;
//!     conn.audited()
//!         .transaction(async |tx| {
//!             let change = tx
//!                 .update::<Customer, _, _>(customers::table.find(id), customers::plan.eq("pro"))
//!                 .await?;
//!             if change.before.plan == "enterprise" {
//!                 return Err("no downgrade from enterprise".into()); // rolls back: no change recorded
//!             }
//!             Ok::<_, Error>(())
//!         })
//!         .await
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let manager = AsyncDieselConnectionManager::new("postgres://localhost/app");
//!     let pool = Pool::builder(manager).build()?;
//!     upgrade(&pool, 1).await
//! }
//! ```

mod action;
#[cfg(feature = "async")]
mod async_audited;
#[cfg(feature = "async")]
mod async_capture;
mod audited;
mod capture;
mod error;
mod ops;
pub mod outbox;
mod plan;
mod sql;

pub use action::EventAction;
#[cfg(feature = "async")]
pub use async_audited::{AsyncAudited, AsyncAuditedExt, AsyncTransactionFn, AsyncWithAction};
#[cfg(feature = "async")]
pub use async_capture::{AsyncAuditConnection, AsyncDeleteTarget, AsyncInsertValues, AsyncUpdateTarget};
pub use audited::{Audited, WithAction};
pub use capture::{AuditConnection, DeleteTarget, InsertValues, Limit, UpdateTarget};
pub use error::Error;
pub use ops::{Change, DEFAULT_MAX_ROWS, Snapshots};
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
