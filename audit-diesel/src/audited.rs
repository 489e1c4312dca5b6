//! [`Audited`]: a diesel connection whose inserts, updates and deletes are recorded with their
//! before and after state, released only when the transaction commits.

use audit_runtime::{AuditModel, AuditScope, Changes, FailureMode, Timestamp};
use serde_json::{Map, Value};

use crate::action::{Declared, EventAction, Resolved, default_action, resolve};
use crate::capture::{AuditConnection, DeleteTarget, InsertValues, Limit, UpdateTarget};
use crate::error::Error;
use crate::outbox::{Captured, WrittenEvent};
use crate::sql::{Dialect, OutboxParts};

/// The default cap of the bulk operations ([`Audited::update_all`], [`Audited::delete_all`]).
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

/// Settings of an [`Audited`] connection; inherited by nested transactions.
#[derive(Clone, Debug)]
struct Options {
    max_rows: usize,
    ignore: &'static [&'static str],
    snapshots: Snapshots,
    skip_unchanged: bool,
    outbox: bool,
    failure_mode: Option<FailureMode>,
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

/// One updated row: the model before and after, and the snapshot fields that changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Change<M> {
    /// The row as it was (read under lock, in the same statement or transaction).
    pub before: M,
    /// The row as the update left it.
    pub after: M,
    /// Snapshot fields whose values differ, in snapshot order, without the ignored ones
    /// ([`Audited::ignore`]). A redacted field is named when its value changed: its snapshot
    /// value is a keyed fingerprint ([`audit_runtime::fingerprint`]), which changes with the
    /// value while the value itself is never shown.
    pub changed: Vec<String>,
}

/// An event waiting for its transaction to commit, with the scope it was captured in.
struct Pending {
    captured: Captured,
    scope: Option<AuditScope>,
}

/// A diesel connection whose changes are audited. Get one with
/// [`AuditedExt::audited`](crate::AuditedExt::audited) or [`Audited::new`].
///
/// Outside a transaction, each operation is atomic on its own and its events are released as
/// soon as it returns (on PostgreSQL an update or delete is a single statement; on SQLite it
/// runs in its own `BEGIN IMMEDIATE` transaction). Inside [`transaction`](Self::transaction),
/// events are released only when the outermost transaction commits, and dropped with any
/// transaction or savepoint that rolls back.
///
/// Released inside an `#[audited]` call, a change is recorded in the call's event rather than
/// in one of its own (see the [crate documentation](crate#inside-audited-calls-one-change-one-record)).
///
/// Plain diesel queries run on [`conn`](Self::conn), inside the same transaction.
pub struct Audited<'c, C> {
    conn: &'c mut C,
    /// `Some` inside an audited transaction: where its events wait for the commit.
    pending: Option<&'c mut Vec<Pending>>,
    opts: Options,
}

impl<C> std::fmt::Debug for Audited<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audited")
            .field("in_transaction", &self.pending.is_some())
            .field("options", &self.opts)
            .finish_non_exhaustive()
    }
}

impl<'c, C: AuditConnection> Audited<'c, C> {
    /// Audits the operations run through the returned value on `conn`.
    pub fn new(conn: &'c mut C) -> Self {
        Audited {
            conn,
            pending: None,
            opts: Options::default(),
        }
    }

    /// The connection, for plain diesel queries in the same transaction.
    pub fn conn(&mut self) -> &mut C {
        self.conn
    }

    /// Most rows [`update_all`](Self::update_all) and [`delete_all`](Self::delete_all) may
    /// change (default [`DEFAULT_MAX_ROWS`]); past it they fail with
    /// [`Error::TooManyRows`] and change nothing. The rows are held in memory, so the cap also
    /// bounds memory.
    pub fn max_rows(mut self, rows: usize) -> Self {
        self.opts.max_rows = rows.max(1);
        self
    }

    /// Snapshot fields that never count as changed (`updated_at`, `version`, ...): they are
    /// left out of [`Change::changed`] and of [`Snapshots::Changed`] diffs.
    pub fn ignore(mut self, fields: &'static [&'static str]) -> Self {
        self.opts.ignore = fields;
        self
    }

    /// What updates record as before and after (default [`Snapshots::Full`]).
    pub fn snapshots(mut self, snapshots: Snapshots) -> Self {
        self.opts.snapshots = snapshots;
        self
    }

    /// Records no event for an update that changed no field (ignored fields aside), such as
    /// a save of an unchanged form. Default: every update is recorded.
    pub fn skip_unchanged(mut self, skip: bool) -> Self {
        self.opts.skip_unchanged = skip;
        self
    }

    /// Writes events to the outbox table in the same transaction as the change instead of
    /// handing them to the writer after the commit; a [`Relay`](crate::Relay) delivers them.
    /// Create the table once with [`AuditConnection::create_outbox`].
    ///
    /// On PostgreSQL a single-row [`update`](Self::update) of an eligible model writes its
    /// outbox row in the same statement as the change (see the
    /// [crate documentation](crate#how-the-before-state-is-read)); the first such update of a
    /// model runs a one-off probe to establish eligibility.
    pub fn outbox(mut self, on: bool) -> Self {
        self.opts.outbox = on;
        self
    }

    /// The failure mode for these operations (default: the process-wide one). With
    /// [`FailureMode::Refuse`] and no healthy sink, an operation or transaction fails with
    /// [`Error::Audit`] before changing anything (not checked with the outbox, which needs no
    /// sink until the relay runs); so does an operation whose action, given as a string, the
    /// installed vocabulary does not declare (see [`action`](Self::action)), outbox or not.
    pub fn failure_mode(mut self, mode: FailureMode) -> Self {
        self.opts.failure_mode = Some(mode);
        self
    }

    /// Whether this is inside an audited transaction.
    pub fn in_transaction(&self) -> bool {
        self.pending.is_some()
    }

    /// Runs `f` in a transaction: `BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL, or a
    /// savepoint when already inside one. Commits if `f` returns `Ok`, rolls back otherwise.
    ///
    /// The events of the operations inside are released when the outermost transaction
    /// commits; those of a rolled-back savepoint are dropped with it. Nothing is released for
    /// a transaction that rolls back, and an error from the commit itself releases nothing.
    pub fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Audited<'_, C>) -> Result<T, E>,
        E: From<Error>,
    {
        let Audited { conn, pending, opts } = self;
        match pending {
            Some(pending) => {
                let mark = pending.len();
                let result = conn.transaction(|conn| {
                    let mut inner = Audited {
                        conn,
                        pending: Some(&mut **pending),
                        opts: opts.clone(),
                    };
                    f(&mut inner).map_err(TxError::User)
                });
                if result.is_err() {
                    pending.truncate(mark);
                }
                result.map_err(TxError::into_user)
            }
            None => {
                if conn.in_plain_transaction().map_err(E::from)? {
                    return Err(E::from(Error::UnauditedTransaction));
                }
                if !opts.outbox {
                    audit_runtime::ensure_sink(opts.failure_mode).map_err(|e| E::from(Error::Audit(e)))?;
                }
                let mut events = Vec::new();
                let value = C::audit_transaction(conn, |conn| {
                    let mut inner = Audited {
                        conn,
                        pending: Some(&mut events),
                        opts: opts.clone(),
                    };
                    f(&mut inner).map_err(TxError::User)
                })
                .map_err(TxError::into_user)?;
                release(events, opts.failure_mode).map_err(E::from)?;
                Ok(value)
            }
        }
    }

    /// Runs `capture` so that it is atomic and its events are released only after commit.
    ///
    /// `single_statement`: `capture` is one statement, atomic on its own. `writes_outbox`: it
    /// also writes its events to the outbox itself (and returns none), so with the outbox on
    /// it still needs no transaction of its own.
    fn apply<R>(
        &mut self,
        single_statement: bool,
        writes_outbox: bool,
        capture: impl FnOnce(&mut C, &Options) -> Result<(R, Vec<Captured>), Error>,
    ) -> Result<R, Error> {
        if let Some(pending) = &mut self.pending {
            let (value, captured) = capture(self.conn, &self.opts)?;
            if writes_outbox {
                debug_assert!(captured.is_empty());
            } else if self.opts.outbox {
                let scope = AuditScope::current();
                let rows: Vec<_> = captured.iter().map(|c| c.to_outbox_row(scope.as_ref())).collect();
                if !rows.is_empty() {
                    self.conn.outbox_insert(&rows)?;
                }
            } else {
                let scope = AuditScope::current();
                pending.extend(captured.into_iter().map(|captured| Pending {
                    captured,
                    scope: scope.clone(),
                }));
            }
            return Ok(value);
        }
        if self.conn.in_plain_transaction()? {
            return Err(Error::UnauditedTransaction);
        }
        if single_statement && writes_outbox {
            // One statement writing the change and its outbox rows: nothing to release.
            let (value, _) = capture(self.conn, &self.opts)?;
            return Ok(value);
        }
        if single_statement && !self.opts.outbox {
            // One statement is its own transaction: released once it has returned.
            audit_runtime::ensure_sink(self.opts.failure_mode)?;
            let (value, captured) = capture(self.conn, &self.opts)?;
            let scope = AuditScope::current();
            let events = captured.into_iter().map(|captured| Pending {
                captured,
                scope: scope.clone(),
            });
            release(events, self.opts.failure_mode)?;
            return Ok(value);
        }
        self.transaction(|tx| tx.apply(single_statement, writes_outbox, capture))
    }

    /// Inserts one row and records its after-state; returns the row as stored (defaults,
    /// generated ids and triggers applied).
    ///
    /// ```ignore
    /// let customer: Customer = db.insert(customers::table, &NewCustomer { name: "Ada" })?;
    /// ```
    pub fn insert<'q, M, T, V>(&mut self, table: T, values: V) -> Result<M, Error>
    where
        V: InsertValues<'q, C, T, M>,
        M: AuditModel,
    {
        let () = Declared::<M>::CREATE;
        self.insert_as(default_action::<M>(M::CREATE_ACTION, "create"), table, values)
    }

    /// Inserts rows one statement each, in one transaction, recording each; returns them.
    pub fn insert_all<'q, M, T, V, I>(&mut self, table: T, values: I) -> Result<Vec<M>, Error>
    where
        I: IntoIterator<Item = V>,
        T: Copy,
        V: InsertValues<'q, C, T, M>,
        M: AuditModel,
    {
        let () = Declared::<M>::CREATE;
        self.insert_all_as(default_action::<M>(M::CREATE_ACTION, "create"), table, values)
    }

    /// Updates the one row `target` matches (`customers.find(id)`) with `changes` (anything
    /// diesel's `.set()` takes) and records before, after and the changed fields.
    ///
    /// Fails with [`Error::NotFound`] if no row matches and [`Error::NotUnique`] if more than
    /// one does, changing nothing.
    pub fn update<'q, M, Tg, V>(&mut self, target: Tg, changes: V) -> Result<Change<M>, Error>
    where
        Tg: UpdateTarget<'q, C, V, M>,
        M: AuditModel,
    {
        let () = Declared::<M>::UPDATE;
        self.update_as(default_action::<M>(M::UPDATE_ACTION, "update"), target, changes)
    }

    /// Updates every row `target` matches (a filter such as
    /// `invoices.filter(status.eq("draft"))`, or a whole table), one event per row with
    /// before and after paired by primary key.
    ///
    /// Fails with [`Error::TooManyRows`] and changes nothing if more than
    /// [`max_rows`](Self::max_rows) rows match.
    pub fn update_all<'q, M, Tg, V>(&mut self, target: Tg, changes: V) -> Result<Vec<Change<M>>, Error>
    where
        Tg: UpdateTarget<'q, C, V, M>,
        M: AuditModel,
    {
        let () = Declared::<M>::UPDATE;
        self.update_all_as(default_action::<M>(M::UPDATE_ACTION, "update"), target, changes)
    }

    /// Deletes the one row `target` matches and records its before-state; returns it.
    ///
    /// Fails with [`Error::NotFound`] or [`Error::NotUnique`] as [`update`](Self::update).
    pub fn delete<'q, M, Tg>(&mut self, target: Tg) -> Result<M, Error>
    where
        Tg: DeleteTarget<'q, C, M>,
        M: AuditModel,
    {
        let () = Declared::<M>::DELETE;
        self.delete_as(default_action::<M>(M::DELETE_ACTION, "delete"), target)
    }

    /// Deletes every row `target` matches, one event per row; returns them. Capped like
    /// [`update_all`](Self::update_all).
    pub fn delete_all<'q, M, Tg>(&mut self, target: Tg) -> Result<Vec<M>, Error>
    where
        Tg: DeleteTarget<'q, C, M>,
        M: AuditModel,
    {
        let () = Declared::<M>::DELETE;
        self.delete_all_as(default_action::<M>(M::DELETE_ACTION, "delete"), target)
    }

    /// The same operations recorded under `action` instead of the model's default
    /// (`<resource>.create`, `<resource>.update`, `<resource>.delete`).
    ///
    /// Prefer a typed action, checked against `audit.toml` when the code compiles:
    /// `tx.action(audit::action!("billing.update")).update(...)`. A string
    /// (`tx.action("billing.update")`) is checked when the operation runs, against the
    /// vocabulary installed in the process (`AuditLayerBuilder::vocabulary`): under
    /// [`FailureMode::Refuse`] an unknown name fails the operation with [`Error::Audit`]
    /// before it changes anything; under `Warn` it is recorded and reported loudly.
    pub fn action(&mut self, action: impl Into<EventAction>) -> WithAction<'_, 'c, C> {
        WithAction {
            audited: self,
            action: action.into(),
        }
    }

    /// The effective failure mode of these operations.
    fn mode(&self) -> FailureMode {
        self.opts.failure_mode.unwrap_or_else(audit_runtime::failure_mode)
    }

    fn insert_as<'q, T, V, M>(&mut self, action: EventAction, table: T, values: V) -> Result<M, Error>
    where
        V: InsertValues<'q, C, T, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        self.apply(true, false, |conn, _| {
            let row = values.capture_insert(conn, table)?;
            let captured = created(action, &row);
            Ok((row, vec![captured]))
        })
    }

    fn insert_all_as<'q, T, V, M, I>(&mut self, action: EventAction, table: T, values: I) -> Result<Vec<M>, Error>
    where
        I: IntoIterator<Item = V>,
        T: Copy,
        V: InsertValues<'q, C, T, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        let values: Vec<V> = values.into_iter().collect();
        self.apply(values.len() <= 1, false, |conn, _| {
            let mut rows = Vec::with_capacity(values.len());
            let mut captured = Vec::with_capacity(values.len());
            for v in values {
                let row = v.capture_insert(conn, table)?;
                captured.push(created(action.clone(), &row));
                rows.push(row);
            }
            Ok((rows, captured))
        })
    }

    fn update_as<'q, Tg, V, M>(&mut self, action: EventAction, target: Tg, changes: V) -> Result<Change<M>, Error>
    where
        Tg: UpdateTarget<'q, C, V, M>,
        M: AuditModel,
    {
        let limit = Limit {
            cap: 1,
            single: true,
            operation: "update",
        };
        let mut all = self.update_with(action, target, changes, limit)?;
        all.pop().ok_or_else(|| Error::NotFound {
            operation: "update",
            table: M::RESOURCE_TYPE.to_owned(),
        })
    }

    fn update_all_as<'q, Tg, V, M>(
        &mut self,
        action: EventAction,
        target: Tg,
        changes: V,
    ) -> Result<Vec<Change<M>>, Error>
    where
        Tg: UpdateTarget<'q, C, V, M>,
        M: AuditModel,
    {
        let limit = Limit {
            cap: self.opts.max_rows,
            single: false,
            operation: "update_all",
        };
        self.update_with(action, target, changes, limit)
    }

    fn update_with<'q, Tg, V, M>(
        &mut self,
        action: EventAction,
        target: Tg,
        changes: V,
        limit: Limit,
    ) -> Result<Vec<Change<M>>, Error>
    where
        Tg: UpdateTarget<'q, C, V, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        // PostgreSQL with the outbox: one statement that writes the outbox rows too, when the
        // database provably builds the model's snapshots (see `crate::plan`).
        let plan = if self.opts.outbox
            && limit.single
            && self.opts.snapshots == Snapshots::Full
            && !self.opts.skip_unchanged
            && C::DIALECT == Dialect::Postgres
            // (outside an audited transaction, a plain one is refused below: no probe then)
            && (self.pending.is_some() || !self.conn.in_plain_transaction()?)
        {
            Tg::snapshot_plan(self.conn)
        } else {
            None
        };
        if let Some(plan) = plan {
            return self.apply(true, true, |conn, opts| {
                let timestamp = Timestamp::now();
                let scope = AuditScope::current();
                let (event_id, prefix) = crate::outbox::outbox_prefix(&action, timestamp, scope.as_ref());
                let parts = OutboxParts {
                    plan,
                    ignore: opts.ignore,
                    event_id: event_id.clone(),
                    prefix,
                    resource_type: M::RESOURCE_TYPE,
                    pads: plan
                        .has_fingerprints()
                        .then(|| Box::new(audit_runtime::redact::hmac_pads())),
                };
                let rows = target.capture_update_outboxed(conn, changes, limit, parts)?;
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
                        // Never expected (the plan was proven on probes): stop using it, and fail
                        // so that an enclosing transaction rolls back.
                        plan.disable();
                        return Err(Error::Outbox {
                            event_id,
                            message: "the database built an event that differs from the model's snapshots; \
                                      the one-statement outbox path is disabled for this model"
                                .into(),
                        });
                    }
                    out.push(Change { before, after, changed });
                }
                Ok((out, Vec::new()))
            });
        }
        self.apply(
            C::DIALECT == Dialect::Postgres && !self.opts.outbox,
            false,
            |conn, opts| {
                let pairs = target.capture_update(conn, changes, limit)?;
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
                Ok((out, captured))
            },
        )
    }

    fn delete_as<'q, Tg, M>(&mut self, action: EventAction, target: Tg) -> Result<M, Error>
    where
        Tg: DeleteTarget<'q, C, M>,
        M: AuditModel,
    {
        let limit = Limit {
            cap: 1,
            single: true,
            operation: "delete",
        };
        let mut all = self.delete_with(action, target, limit)?;
        all.pop().ok_or_else(|| Error::NotFound {
            operation: "delete",
            table: M::RESOURCE_TYPE.to_owned(),
        })
    }

    fn delete_all_as<'q, Tg, M>(&mut self, action: EventAction, target: Tg) -> Result<Vec<M>, Error>
    where
        Tg: DeleteTarget<'q, C, M>,
        M: AuditModel,
    {
        let limit = Limit {
            cap: self.opts.max_rows,
            single: false,
            operation: "delete_all",
        };
        self.delete_with(action, target, limit)
    }

    fn delete_with<'q, Tg, M>(&mut self, action: EventAction, target: Tg, limit: Limit) -> Result<Vec<M>, Error>
    where
        Tg: DeleteTarget<'q, C, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        self.apply(C::DIALECT == Dialect::Postgres, false, |conn, _| {
            let rows = target.capture_delete(conn, limit)?;
            let timestamp = Timestamp::now();
            let captured = rows
                .iter()
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
                .collect();
            Ok((rows, captured))
        })
    }
}

/// [`Audited`] operations recorded under an explicit action; see [`Audited::action`].
pub struct WithAction<'a, 'c, C> {
    audited: &'a mut Audited<'c, C>,
    action: EventAction,
}

impl<C> std::fmt::Debug for WithAction<'_, '_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithAction")
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

impl<C: AuditConnection> WithAction<'_, '_, C> {
    /// [`Audited::insert`] under this action.
    pub fn insert<'q, M, T, V>(self, table: T, values: V) -> Result<M, Error>
    where
        V: InsertValues<'q, C, T, M>,
        M: AuditModel,
    {
        self.audited.insert_as(self.action, table, values)
    }

    /// [`Audited::insert_all`] under this action.
    pub fn insert_all<'q, M, T, V, I>(self, table: T, values: I) -> Result<Vec<M>, Error>
    where
        I: IntoIterator<Item = V>,
        T: Copy,
        V: InsertValues<'q, C, T, M>,
        M: AuditModel,
    {
        self.audited.insert_all_as(self.action, table, values)
    }

    /// [`Audited::update`] under this action.
    pub fn update<'q, M, Tg, V>(self, target: Tg, changes: V) -> Result<Change<M>, Error>
    where
        Tg: UpdateTarget<'q, C, V, M>,
        M: AuditModel,
    {
        self.audited.update_as(self.action, target, changes)
    }

    /// [`Audited::update_all`] under this action.
    pub fn update_all<'q, M, Tg, V>(self, target: Tg, changes: V) -> Result<Vec<Change<M>>, Error>
    where
        Tg: UpdateTarget<'q, C, V, M>,
        M: AuditModel,
    {
        self.audited.update_all_as(self.action, target, changes)
    }

    /// [`Audited::delete`] under this action.
    pub fn delete<'q, M, Tg>(self, target: Tg) -> Result<M, Error>
    where
        Tg: DeleteTarget<'q, C, M>,
        M: AuditModel,
    {
        self.audited.delete_as(self.action, target)
    }

    /// [`Audited::delete_all`] under this action.
    pub fn delete_all<'q, M, Tg>(self, target: Tg) -> Result<Vec<M>, Error>
    where
        Tg: DeleteTarget<'q, C, M>,
        M: AuditModel,
    {
        self.audited.delete_all_as(self.action, target)
    }
}

fn created<M: AuditModel>(action: Resolved, row: &M) -> Captured {
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

/// Fields of two snapshots whose values differ, in `after`'s order, minus `ignore`.
fn changed_fields(before: &Value, after: &Value, ignore: &[&str]) -> Vec<String> {
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
/// the call current here is the one whose body committed it. Only a change captured inside an
/// audited call is offered: a change captured outside any (or in a scope entered without one)
/// is not that call's work.
fn release(events: impl IntoIterator<Item = Pending>, mode: Option<FailureMode>) -> Result<(), Error> {
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

/// Carries the user's error through diesel's transaction, which needs `From<diesel::Error>`.
enum TxError<E> {
    User(E),
    Diesel(diesel::result::Error),
}

impl<E> From<diesel::result::Error> for TxError<E> {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Diesel(e)
    }
}

impl<E: From<Error>> TxError<E> {
    fn into_user(self) -> E {
        match self {
            TxError::User(e) => e,
            TxError::Diesel(e) => E::from(Error::Database(e)),
        }
    }
}

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
