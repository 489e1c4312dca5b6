//! What an audited operation does apart from talking to the database, shared by the sync
//! [`Audited`](crate::Audited) and the async [`AsyncAudited`](crate::AsyncAudited): the
//! options, the events made of the captured rows, where they go (held for the commit, outbox
//! rows, or released now), and their release to the writer or to the enclosing `#[audited]`
//! call. Each connection kind only runs the statements and the transaction.

use audit_runtime::{AuditModel, AuditScope, Changes, FailureMode, Timestamp};
use serde_json::{Map, Value};

use crate::action::Resolved;
use crate::capture::Limit;
use crate::error::Error;
use crate::outbox::{Captured, OutboxRow, WrittenEvent};
use crate::plan::SnapshotPlan;
use crate::sql::{Dialect, OutboxParts};

/// The default cap of the bulk operations (`update_all`, `delete_all`).
pub const DEFAULT_MAX_ROWS: usize = 10_000;

/// What `changes.before` and `changes.after` hold for an update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Snapshots {
    /// The whole (redacted) snapshot of the row before and after.
    #[default]
    Full,
    /// Only the fields that changed (wide rows with small updates keep the store small).
    /// Inserts and deletes still record the whole row.
    Changed,
}

/// Settings of an audited connection; inherited by nested transactions.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub max_rows: usize,
    pub ignore: &'static [&'static str],
    pub snapshots: Snapshots,
    pub skip_unchanged: bool,
    pub outbox: bool,
    pub failure_mode: Option<FailureMode>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_rows: DEFAULT_MAX_ROWS,
            ignore: &[],
            snapshots: Snapshots::Full,
            skip_unchanged: false,
            outbox: false,
            failure_mode: None,
        }
    }
}

impl Options {
    /// The effective failure mode.
    pub fn mode(&self) -> FailureMode {
        self.failure_mode.unwrap_or_else(audit_runtime::failure_mode)
    }

    /// Whether an update under `limit` on `dialect` may write its outbox row in its own
    /// statement (whether the model's plan allows it is the model's to say).
    pub fn outbox_in_statement(&self, limit: Limit, dialect: Dialect) -> bool {
        self.outbox
            && limit.single
            && self.snapshots == Snapshots::Full
            && !self.skip_unchanged
            && dialect == Dialect::Postgres
    }
}

/// One updated row: the model before and after, and the snapshot fields that changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Change<M> {
    /// The row as it was (read under lock, in the same statement or transaction).
    pub before: M,
    /// The row as the update left it.
    pub after: M,
    /// Snapshot fields whose values differ, in snapshot order, without the ignored ones
    /// (`ignore`). A redacted field is named when its value changed: its snapshot value is a
    /// keyed fingerprint ([`audit_runtime::fingerprint`]), which changes with the value while
    /// the value itself is never shown.
    pub changed: Vec<String>,
}

/// An event waiting for its transaction to commit, with the scope it was captured in.
pub(crate) struct Pending {
    captured: Captured,
    scope: Option<AuditScope>,
}

/// Events captured now, in the current scope, to be released after the commit.
pub(crate) fn pending(captured: Vec<Captured>) -> impl Iterator<Item = Pending> {
    let scope = AuditScope::current();
    captured.into_iter().map(move |captured| Pending {
        captured,
        scope: scope.clone(),
    })
}

/// Inside an audited transaction: the events of an operation wait for the commit in
/// `waiting`, or, with the outbox, are returned as rows to insert in the transaction now.
pub(crate) fn hold(waiting: &mut Vec<Pending>, captured: Vec<Captured>, opts: &Options) -> Vec<OutboxRow> {
    if opts.outbox {
        let scope = AuditScope::current();
        return captured.iter().map(|c| c.to_outbox_row(scope.as_ref())).collect();
    }
    waiting.extend(pending(captured));
    Vec::new()
}

/// How an operation is made atomic with its events, decided before it runs.
pub(crate) enum Route {
    /// Inside an audited transaction: its events wait for the commit (see [`hold`]).
    Held,
    /// One statement that also writes its outbox rows: nothing to release.
    OwnStatementWithOutbox,
    /// One statement, atomic on its own: its events are released once it has returned.
    OwnStatement,
    /// Run in an audited transaction of its own.
    OwnTransaction,
}

impl Route {
    /// `single_statement`: the operation is one statement. `writes_outbox`: it also writes its
    /// outbox rows itself. `in_plain_transaction` is asked only outside an audited transaction:
    /// an operation there is refused, since its events would be released before that
    /// transaction commits.
    pub fn of(
        in_audited_transaction: bool,
        in_plain_transaction: impl FnOnce() -> Result<bool, Error>,
        single_statement: bool,
        writes_outbox: bool,
        opts: &Options,
    ) -> Result<Route, Error> {
        if in_audited_transaction {
            return Ok(Route::Held);
        }
        if in_plain_transaction()? {
            return Err(Error::UnauditedTransaction);
        }
        Ok(match (single_statement, writes_outbox, opts.outbox) {
            (true, true, _) => Route::OwnStatementWithOutbox,
            (true, false, false) => Route::OwnStatement,
            _ => Route::OwnTransaction,
        })
    }
}

/// The checks before an audited transaction starts: not inside a plain one, and
/// [`sink_check`].
pub(crate) fn begin_checks(in_plain_transaction: bool, opts: &Options) -> Result<(), Error> {
    if in_plain_transaction {
        return Err(Error::UnauditedTransaction);
    }
    sink_check(opts)
}

/// Under `Refuse`, a healthy sink before anything changes; not with the outbox, which needs
/// none until the relay runs.
pub(crate) fn sink_check(opts: &Options) -> Result<(), Error> {
    if !opts.outbox {
        audit_runtime::ensure_sink(opts.failure_mode)?;
    }
    Ok(())
}

/// The result of a single-row operation from its rows (none: [`Error::NotFound`]).
pub(crate) fn single<T, M: AuditModel>(rows: Result<Vec<T>, Error>, operation: &'static str) -> Result<T, Error> {
    rows?.pop().ok_or_else(|| Error::NotFound {
        operation,
        table: M::RESOURCE_TYPE.to_owned(),
    })
}

/// The event of an inserted row.
pub(crate) fn created<M: AuditModel>(action: Resolved, row: &M) -> Captured {
    Captured {
        action,
        resource: row.audit_resource(),
        changes: Changes {
            before: None,
            after: Some(row.audit_snapshot()),
            fields: Vec::new(),
        },
        timestamp: Timestamp::now(),
    }
}

/// The changes of updated rows, and their events (none for unchanged rows with
/// `skip_unchanged`).
pub(crate) fn updated<M: AuditModel>(
    action: &Resolved,
    pairs: Vec<(M, M)>,
    opts: &Options,
) -> (Vec<Change<M>>, Vec<Captured>) {
    let timestamp = Timestamp::now();
    let mut out = Vec::with_capacity(pairs.len());
    let mut captured = Vec::with_capacity(pairs.len());
    for (before, after) in pairs {
        let (b, a) = (before.audit_snapshot(), after.audit_snapshot());
        let changed = changed_fields(&b, &a, opts.ignore);
        if !(opts.skip_unchanged && changed.is_empty()) {
            let (b, a) = match opts.snapshots {
                Snapshots::Full => (b, a),
                Snapshots::Changed => (only(&b, &changed), only(&a, &changed)),
            };
            captured.push(Captured {
                action: action.clone(),
                resource: after.audit_resource(),
                changes: Changes {
                    before: Some(b),
                    after: Some(a),
                    fields: changed.clone(),
                },
                timestamp,
            });
        }
        out.push(Change { before, after, changed });
    }
    (out, captured)
}

/// The events of deleted rows.
pub(crate) fn deleted<M: AuditModel>(action: &Resolved, rows: &[M]) -> Vec<Captured> {
    let timestamp = Timestamp::now();
    rows.iter()
        .map(|row| Captured {
            action: action.clone(),
            resource: row.audit_resource(),
            changes: Changes {
                before: Some(row.audit_snapshot()),
                after: None,
                fields: Vec::new(),
            },
            timestamp,
        })
        .collect()
}

/// What the one-statement outboxed update of model `M` needs to build its event in the
/// database: the event's prefix (action, scope, timestamp, id, serialized now) and, when the
/// plan has fingerprints to compute, the padded HMAC key.
pub(crate) fn outbox_parts<M: AuditModel>(
    plan: &'static SnapshotPlan,
    action: &Resolved,
    opts: &Options,
) -> OutboxParts {
    let scope = AuditScope::current();
    let (event_id, prefix) = crate::outbox::outbox_prefix(action, Timestamp::now(), scope.as_ref());
    OutboxParts {
        plan,
        ignore: opts.ignore,
        event_id,
        prefix,
        resource_type: M::RESOURCE_TYPE,
        pads: plan
            .has_fingerprints()
            .then(|| Box::new(audit_runtime::redact::hmac_pads())),
    }
}

/// The changes of a one-statement outboxed update, after comparing each event the database
/// wrote with the one the model makes of the same rows. A difference is never expected (the
/// plan was proven on probes): it disables the plan and fails the operation, so that an
/// enclosing transaction rolls back.
pub(crate) fn check_outboxed<M: AuditModel>(
    rows: Vec<(M, M, String)>,
    plan: &SnapshotPlan,
    event_id: &str,
    opts: &Options,
) -> Result<Vec<Change<M>>, Error> {
    let mut out = Vec::with_capacity(rows.len());
    for (before, after, written) in rows {
        let (b, a) = (before.audit_snapshot(), after.audit_snapshot());
        let changed = changed_fields(&b, &a, opts.ignore);
        let expected = Changes {
            before: Some(b),
            after: Some(a),
            fields: changed.clone(),
        };
        let agrees = serde_json::from_str::<WrittenEvent>(&written)
            .is_ok_and(|w| w.changes == expected && w.resource == after.audit_resource());
        if !agrees {
            plan.disable();
            return Err(Error::Outbox {
                event_id: event_id.to_owned(),
                message: "the database built an event that differs from the model's snapshots; \
                          the one-statement outbox path is disabled for this model"
                    .into(),
            });
        }
        out.push(Change { before, after, changed });
    }
    Ok(out)
}

/// Fields of two snapshots whose values differ, in `after`'s order, minus `ignore`.
pub(crate) fn changed_fields(before: &Value, after: &Value, ignore: &[&str]) -> Vec<String> {
    let (Value::Object(b), Value::Object(a)) = (before, after) else {
        return if before == after {
            Vec::new()
        } else {
            vec![String::new()]
        };
    };
    let mut out: Vec<String> = a
        .iter()
        .filter(|(k, v)| !ignore.contains(&k.as_str()) && b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(
        b.keys()
            .filter(|k| !a.contains_key(*k) && !ignore.contains(&k.as_str()))
            .cloned(),
    );
    out
}

fn only(snapshot: &Value, fields: &[String]) -> Value {
    let Value::Object(map) = snapshot else {
        return snapshot.clone();
    };
    let picked: Map<String, Value> = fields
        .iter()
        .filter_map(|f| map.get(f).map(|v| (f.clone(), v.clone())))
        .collect();
    Value::Object(picked)
}

/// Releases committed changes: the first one an audited call running now takes is recorded in
/// that call's event (see [`AuditScope::offer_change`]); the others are handed to the writer
/// as events of their own, each in the scope it was captured in.
///
/// Called where the change is released (after the commit, or after the single statement), so
/// the call current here is the one whose body committed it: for the async connection too,
/// since the `#[audited]` call (and a request's scope) is entered on every poll of its body,
/// and this runs in the poll that saw the commit complete. Only a change captured inside an
/// audited call is offered: a change captured outside any (or in a scope entered without one)
/// is not that call's work.
pub(crate) fn release(events: impl IntoIterator<Item = Pending>, mode: Option<FailureMode>) -> Result<(), Error> {
    let mode = mode.unwrap_or_else(audit_runtime::failure_mode);
    let mut first_error = None;
    let collecting = AuditScope::current_is_collecting();
    for Pending { captured, scope } in events {
        let captured = if collecting && scope.as_ref().is_some_and(AuditScope::is_collecting) {
            match captured.offer() {
                Ok(()) => continue,
                Err(captured) => captured,
            }
        } else {
            captured
        };
        let event = captured.into_event();
        // Every event is attempted even after a failure: the change is committed, and each
        // undelivered event is reported by the runtime on its own.
        let result = match &scope {
            Some(scope) => scope.in_scope(|| event.emit_with(mode)),
            None => event.emit_with(mode),
        };
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(Error::Audit(e)),
        None => Ok(()),
    }
}

/// The public surface of an audited connection type, one definition for the sync
/// [`Audited`](crate::Audited) and the async [`AsyncAudited`](crate::AsyncAudited) so that the
/// two cannot drift apart: construction, the options, and the operations with their default
/// actions (checked at compile time) or an explicit one ([`EventAction`](crate::EventAction)).
///
/// The type must have the fields `conn`, `pending` and `opts`, and the methods `insert_with`,
/// `insert_all_with`, `update_with` and `delete_with` that run an operation under an action.
/// In `async` mode those are `async fn`s, and the operations return their futures, declared
/// `Send` (with `Send` inputs): a future whose `Send` the compiler had to infer through
/// several layers fails that proof inside the higher-ranked closure of a transaction
/// (rust-lang/rust#100013), a declared one does not.
macro_rules! audited_operations {
    (
        $mode:tt [$($send:tt)*]: $Audited:ident, $With:ident, $Conn:ident,
        $Insert:ident, $Update:ident, $Delete:ident
    ) => {
        impl<C> std::fmt::Debug for $Audited<'_, C> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($Audited))
                    .field("in_transaction", &self.pending.is_some())
                    .field("options", &self.opts)
                    .finish_non_exhaustive()
            }
        }

        impl<'c, C: $Conn> $Audited<'c, C> {
            /// Audits the operations run through the returned value on `conn`.
            pub fn new(conn: &'c mut C) -> Self {
                $Audited {
                    conn,
                    pending: None,
                    opts: $crate::ops::Options::default(),
                }
            }

            /// The connection, for plain diesel queries in the same transaction.
            pub fn conn(&mut self) -> &mut C {
                self.conn
            }

            /// Whether this is inside an audited transaction.
            pub fn in_transaction(&self) -> bool {
                self.pending.is_some()
            }

            /// Most rows [`update_all`](Self::update_all) and [`delete_all`](Self::delete_all)
            /// may change (default [`DEFAULT_MAX_ROWS`](crate::DEFAULT_MAX_ROWS)); past it they
            /// fail with [`Error::TooManyRows`] and change nothing. The rows are held in
            /// memory, so the cap also bounds memory.
            pub fn max_rows(mut self, rows: usize) -> Self {
                self.opts.max_rows = rows.max(1);
                self
            }

            /// Snapshot fields that never count as changed (`updated_at`, `version`, ...):
            /// they are left out of [`Change::changed`] and of
            /// [`Snapshots::Changed`](crate::Snapshots::Changed) diffs.
            pub fn ignore(mut self, fields: &'static [&'static str]) -> Self {
                self.opts.ignore = fields;
                self
            }

            /// What updates record as before and after (default
            /// [`Snapshots::Full`](crate::Snapshots::Full)).
            pub fn snapshots(mut self, snapshots: $crate::Snapshots) -> Self {
                self.opts.snapshots = snapshots;
                self
            }

            /// Records no event for an update that changed no field (ignored fields aside),
            /// such as a save of an unchanged form. Default: every update is recorded.
            pub fn skip_unchanged(mut self, skip: bool) -> Self {
                self.opts.skip_unchanged = skip;
                self
            }

            /// Writes events to the outbox table in the same transaction as the change instead
            /// of handing them to the writer after the commit; a [`Relay`](crate::Relay)
            /// delivers them. Create the table once with the connection's `create_outbox`.
            ///
            /// On PostgreSQL a single-row [`update`](Self::update) of an eligible model writes
            /// its outbox row in the same statement as the change (see the
            /// [crate documentation](crate#how-the-before-state-is-read)); the first such
            /// update of a model runs a one-off probe to establish eligibility.
            pub fn outbox(mut self, on: bool) -> Self {
                self.opts.outbox = on;
                self
            }

            /// The failure mode for these operations (default: the process-wide one). With
            /// [`FailureMode::Refuse`](audit_runtime::FailureMode::Refuse) and no healthy sink,
            /// an operation or transaction fails with [`Error::Audit`] before changing anything
            /// (not checked with the outbox, which needs no sink until the relay runs); so does
            /// an operation whose action, given as a string, the installed vocabulary does not
            /// declare (see [`action`](Self::action)), outbox or not.
            pub fn failure_mode(mut self, mode: audit_runtime::FailureMode) -> Self {
                self.opts.failure_mode = Some(mode);
                self
            }

            /// The same operations recorded under `action` instead of the model's default
            /// (`<resource>.create`, `<resource>.update`, `<resource>.delete`).
            ///
            /// Prefer a typed action, checked against `audit.toml` when the code compiles:
            /// `tx.action(audit::action!("billing.update")).update(...)`. A string
            /// (`tx.action("billing.update")`) is checked when the operation runs, against the
            /// vocabulary installed in the process (`AuditLayerBuilder::vocabulary`): under
            /// [`FailureMode::Refuse`](audit_runtime::FailureMode::Refuse) an unknown name
            /// fails the operation with [`Error::Audit`] before it changes anything; under
            /// `Warn` it is recorded and reported loudly.
            pub fn action(&mut self, action: impl Into<$crate::EventAction>) -> $With<'_, 'c, C> {
                $With {
                    audited: self,
                    action: action.into(),
                }
            }

            /// Inserts one row and records its after-state; returns the row as stored
            /// (defaults, generated ids and triggers applied).
            pub fn insert<'q, M, T, V>(&mut self, table: T, values: V) -> $crate::ops::op_output!($mode, Result<M, Error>)
            where
                V: $Insert<'q, C, T, M> $($send)*,
                T: Sized $($send)*,
                M: AuditModel $($send)*,
            {
                let () = $crate::action::Declared::<M>::CREATE;
                let action = $crate::action::default_action::<M>(M::CREATE_ACTION, "create");
                self.insert_with(action, table, values)
            }

            /// Inserts rows one statement each, in one transaction, recording each; returns
            /// them.
            pub fn insert_all<'q, M, T, V, I>(&mut self, table: T, values: I) -> $crate::ops::op_output!($mode, Result<Vec<M>, Error>)
            where
                I: IntoIterator<Item = V>,
                T: Copy $($send)*,
                V: $Insert<'q, C, T, M> $($send)*,
                M: AuditModel $($send)*,
            {
                let () = $crate::action::Declared::<M>::CREATE;
                let action = $crate::action::default_action::<M>(M::CREATE_ACTION, "create");
                self.insert_all_with(action, table, values.into_iter().collect())
            }

            /// Updates the one row `target` matches (`customers.find(id)`) with `changes`
            /// (anything diesel's `.set()` takes) and records before, after and the changed
            /// fields.
            ///
            /// Fails with [`Error::NotFound`] if no row matches and [`Error::NotUnique`] if
            /// more than one does, changing nothing.
            pub fn update<'q, M, Tg, V>(&mut self, target: Tg, changes: V) -> $crate::ops::op_output!($mode, Result<Change<M>, Error>)
            where
                Tg: $Update<'q, C, V, M> $($send)*,
                V: Sized $($send)*,
                M: AuditModel $($send)*,
            {
                let () = $crate::action::Declared::<M>::UPDATE;
                let action = $crate::action::default_action::<M>(M::UPDATE_ACTION, "update");
                let limit = $crate::capture::Limit::single("update");
                $crate::ops::op_single!($mode, M, self.update_with(action, target, changes, limit), "update")
            }

            /// Updates every row `target` matches (a filter such as
            /// `invoices.filter(status.eq("draft"))`, or a whole table), one event per row
            /// with before and after paired by primary key.
            ///
            /// Fails with [`Error::TooManyRows`] and changes nothing if more than
            /// [`max_rows`](Self::max_rows) rows match.
            pub fn update_all<'q, M, Tg, V>(&mut self, target: Tg, changes: V) -> $crate::ops::op_output!($mode, Result<Vec<Change<M>>, Error>)
            where
                Tg: $Update<'q, C, V, M> $($send)*,
                V: Sized $($send)*,
                M: AuditModel $($send)*,
            {
                let () = $crate::action::Declared::<M>::UPDATE;
                let action = $crate::action::default_action::<M>(M::UPDATE_ACTION, "update");
                let limit = $crate::capture::Limit::bulk("update_all", self.opts.max_rows);
                self.update_with(action, target, changes, limit)
            }

            /// Deletes the one row `target` matches and records its before-state; returns it.
            ///
            /// Fails with [`Error::NotFound`] or [`Error::NotUnique`] as
            /// [`update`](Self::update).
            pub fn delete<'q, M, Tg>(&mut self, target: Tg) -> $crate::ops::op_output!($mode, Result<M, Error>)
            where
                Tg: $Delete<'q, C, M> $($send)*,
                M: AuditModel $($send)*,
            {
                let () = $crate::action::Declared::<M>::DELETE;
                let action = $crate::action::default_action::<M>(M::DELETE_ACTION, "delete");
                let limit = $crate::capture::Limit::single("delete");
                $crate::ops::op_single!($mode, M, self.delete_with(action, target, limit), "delete")
            }

            /// Deletes every row `target` matches, one event per row; returns them. Capped
            /// like [`update_all`](Self::update_all).
            pub fn delete_all<'q, M, Tg>(&mut self, target: Tg) -> $crate::ops::op_output!($mode, Result<Vec<M>, Error>)
            where
                Tg: $Delete<'q, C, M> $($send)*,
                M: AuditModel $($send)*,
            {
                let () = $crate::action::Declared::<M>::DELETE;
                let action = $crate::action::default_action::<M>(M::DELETE_ACTION, "delete");
                let limit = $crate::capture::Limit::bulk("delete_all", self.opts.max_rows);
                self.delete_with(action, target, limit)
            }
        }

        #[doc = concat!("[`", stringify!($Audited), "`] operations recorded under an explicit action; see [`", stringify!($Audited), "::action`].")]
        pub struct $With<'a, 'c, C> {
            audited: &'a mut $Audited<'c, C>,
            action: $crate::EventAction,
        }

        impl<C> std::fmt::Debug for $With<'_, '_, C> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($With))
                    .field("action", &self.action)
                    .finish_non_exhaustive()
            }
        }

        impl<'a, C: $Conn> $With<'a, '_, C> {
            #[doc = concat!("[`", stringify!($Audited), "::insert`] under this action.")]
            pub fn insert<'q, M, T, V>(self, table: T, values: V) -> $crate::ops::op_output!($mode, Result<M, Error>)
            where
                V: $Insert<'q, C, T, M> $($send)*,
                T: Sized $($send)*,
                M: AuditModel $($send)*,
            {
                self.audited.insert_with(self.action, table, values)
            }

            #[doc = concat!("[`", stringify!($Audited), "::insert_all`] under this action.")]
            pub fn insert_all<'q, M, T, V, I>(self, table: T, values: I) -> $crate::ops::op_output!($mode, Result<Vec<M>, Error>)
            where
                I: IntoIterator<Item = V>,
                T: Copy $($send)*,
                V: $Insert<'q, C, T, M> $($send)*,
                M: AuditModel $($send)*,
            {
                self.audited.insert_all_with(self.action, table, values.into_iter().collect())
            }

            #[doc = concat!("[`", stringify!($Audited), "::update`] under this action.")]
            pub fn update<'q, M, Tg, V>(self, target: Tg, changes: V) -> $crate::ops::op_output!($mode, Result<Change<M>, Error>)
            where
                Tg: $Update<'q, C, V, M> $($send)*,
                V: Sized $($send)*,
                M: AuditModel $($send)*,
            {
                let limit = $crate::capture::Limit::single("update");
                $crate::ops::op_single!($mode, M, self.audited.update_with(self.action, target, changes, limit), "update")
            }

            #[doc = concat!("[`", stringify!($Audited), "::update_all`] under this action.")]
            pub fn update_all<'q, M, Tg, V>(self, target: Tg, changes: V) -> $crate::ops::op_output!($mode, Result<Vec<Change<M>>, Error>)
            where
                Tg: $Update<'q, C, V, M> $($send)*,
                V: Sized $($send)*,
                M: AuditModel $($send)*,
            {
                let limit = $crate::capture::Limit::bulk("update_all", self.audited.opts.max_rows);
                self.audited.update_with(self.action, target, changes, limit)
            }

            #[doc = concat!("[`", stringify!($Audited), "::delete`] under this action.")]
            pub fn delete<'q, M, Tg>(self, target: Tg) -> $crate::ops::op_output!($mode, Result<M, Error>)
            where
                Tg: $Delete<'q, C, M> $($send)*,
                M: AuditModel $($send)*,
            {
                let limit = $crate::capture::Limit::single("delete");
                $crate::ops::op_single!($mode, M, self.audited.delete_with(self.action, target, limit), "delete")
            }

            #[doc = concat!("[`", stringify!($Audited), "::delete_all`] under this action.")]
            pub fn delete_all<'q, M, Tg>(self, target: Tg) -> $crate::ops::op_output!($mode, Result<Vec<M>, Error>)
            where
                Tg: $Delete<'q, C, M> $($send)*,
                M: AuditModel $($send)*,
            {
                let limit = $crate::capture::Limit::bulk("delete_all", self.audited.opts.max_rows);
                self.audited.delete_with(self.action, target, limit)
            }
        }
    };
}

/// What an operation of [`audited_operations`] returns: its result, or a `Send` future of it.
macro_rules! op_output {
    (sync, $output:ty) => { $output };
    (async, $output:ty) => { impl std::future::Future<Output = $output> + Send };
}

/// The one row of a single-row operation (see [`single`]), when its rows are there.
macro_rules! op_single {
    (sync, $M:ident, $rows:expr, $operation:literal) => {
        $crate::ops::single::<_, $M>($rows, $operation)
    };
    (async, $M:ident, $rows:expr, $operation:literal) => {{
        let rows = $rows;
        async move { $crate::ops::single::<_, $M>(rows.await, $operation) }
    }};
}

pub(crate) use audited_operations;
pub(crate) use {op_output, op_single};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changed_fields_skip_ignored_and_keep_order() {
        let b = json!({"id": 1, "name": "a", "plan": "free", "updated_at": 1});
        let a = json!({"id": 1, "name": "b", "plan": "pro", "updated_at": 2});
        assert_eq!(changed_fields(&b, &a, &["updated_at"]), ["name", "plan"]);
        assert_eq!(only(&a, &["plan".into()]), json!({"plan": "pro"}));
    }
}
