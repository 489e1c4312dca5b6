//! [`Audited`]: a diesel connection whose inserts, updates and deletes are recorded with their
//! before and after state, released only when the transaction commits.

use audit_runtime::{AuditModel, FailureMode};

use crate::action::{EventAction, resolve};
use crate::capture::{AuditConnection, DeleteTarget, InsertValues, Limit, UpdateTarget};
use crate::error::Error;
use crate::ops::{self, Change, Options, Pending, Route, audited_operations};
use crate::outbox::Captured;
use crate::sql::Dialect;

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

audited_operations!(sync []: Audited, WithAction, AuditConnection, InsertValues, UpdateTarget, DeleteTarget);

impl<C: AuditConnection> Audited<'_, C> {
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
                ops::begin_checks(conn.in_plain_transaction()?, opts)?;
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
                ops::release(events, opts.failure_mode)?;
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
        let route = Route::of(
            self.pending.is_some(),
            || self.conn.in_plain_transaction(),
            single_statement,
            writes_outbox,
            &self.opts,
        )?;
        match route {
            Route::Held => {
                let (value, captured) = capture(self.conn, &self.opts)?;
                let pending = self.pending.as_deref_mut().expect("held inside a transaction");
                let rows = ops::hold(pending, captured, &self.opts);
                if !rows.is_empty() {
                    self.conn.outbox_insert(&rows)?;
                }
                Ok(value)
            }
            Route::OwnStatementWithOutbox => Ok(capture(self.conn, &self.opts)?.0),
            Route::OwnStatement => {
                audit_runtime::ensure_sink(self.opts.failure_mode)?;
                let (value, captured) = capture(self.conn, &self.opts)?;
                ops::release(ops::pending(captured), self.opts.failure_mode)?;
                Ok(value)
            }
            Route::OwnTransaction => self.transaction(|tx| tx.apply(single_statement, writes_outbox, capture)),
        }
    }

    /// The effective failure mode of these operations.
    fn mode(&self) -> FailureMode {
        self.opts.mode()
    }

    fn insert_with<'q, T, V, M>(&mut self, action: EventAction, table: T, values: V) -> Result<M, Error>
    where
        V: InsertValues<'q, C, T, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        self.apply(true, false, |conn, _| {
            let row = values.capture_insert(conn, table)?;
            let captured = ops::created(action, &row);
            Ok((row, vec![captured]))
        })
    }

    fn insert_all_with<'q, T, V, M>(&mut self, action: EventAction, table: T, values: Vec<V>) -> Result<Vec<M>, Error>
    where
        T: Copy,
        V: InsertValues<'q, C, T, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        self.apply(values.len() <= 1, false, |conn, _| {
            let mut rows = Vec::with_capacity(values.len());
            let mut captured = Vec::with_capacity(values.len());
            for v in values {
                let row = v.capture_insert(conn, table)?;
                captured.push(ops::created(action.clone(), &row));
                rows.push(row);
            }
            Ok((rows, captured))
        })
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
        let plan = if self.opts.outbox_in_statement(limit, C::DIALECT)
            // (outside an audited transaction, a plain one is refused below: no probe then)
            && (self.pending.is_some() || !self.conn.in_plain_transaction()?)
        {
            Tg::snapshot_plan(self.conn)
        } else {
            None
        };
        if let Some(plan) = plan {
            return self.apply(true, true, |conn, opts| {
                let parts = ops::outbox_parts::<M>(plan, &action, opts);
                let event_id = parts.event_id.clone();
                let rows = target.capture_update_outboxed(conn, changes, limit, parts)?;
                Ok((ops::check_outboxed(rows, plan, &event_id, opts)?, Vec::new()))
            });
        }
        self.apply(
            C::DIALECT == Dialect::Postgres && !self.opts.outbox,
            false,
            |conn, opts| {
                let pairs = target.capture_update(conn, changes, limit)?;
                Ok(ops::updated(&action, pairs, opts))
            },
        )
    }

    fn delete_with<'q, Tg, M>(&mut self, action: EventAction, target: Tg, limit: Limit) -> Result<Vec<M>, Error>
    where
        Tg: DeleteTarget<'q, C, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        self.apply(C::DIALECT == Dialect::Postgres, false, |conn, _| {
            let rows = target.capture_delete(conn, limit)?;
            let captured = ops::deleted(&action, &rows);
            Ok((rows, captured))
        })
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
