//! [`AsyncAudited`]: a diesel-async connection whose inserts, updates and deletes are recorded
//! with their before and after state, released only when the transaction commits. The same
//! operations, options and rules as the sync [`Audited`](crate::Audited) (one definition,
//! [`crate::ops`]); only the statements are awaited.

use std::future::Future;

use audit_runtime::query::RecordSource;
use audit_runtime::{AuditModel, FailureMode, WriterGuard};

use crate::action::{EventAction, resolve};
use crate::async_capture::{
    self, AsyncAuditConnection, AsyncDeleteTarget, AsyncInsertValues, AsyncUpdateTarget, begin, finish,
};
use crate::capture::Limit;
use crate::error::Error;
use crate::ops::{self, Change, Options, Pending, Route, audited_operations};
use crate::outbox::{Captured, Relay};
use crate::sql::Dialect;

/// A diesel-async connection whose changes are audited: the async counterpart of
/// [`Audited`](crate::Audited), with the same operations, options and rules, awaited. Get one
/// with [`AsyncAuditedExt::audited`] or [`AsyncAudited::new`].
///
/// Outside a transaction, each operation is atomic on its own and its events are released as
/// soon as it returns (an update or delete is a single statement). Inside
/// [`transaction`](Self::transaction), events are released only when the outermost
/// transaction commits, and dropped with any transaction or savepoint that rolls back.
///
/// Released inside an `#[audited]` call (an `async fn` too: the call is entered on every poll
/// of its body), a change is recorded in the call's event rather than in one of its own (see
/// the [crate documentation](crate#inside-audited-calls-one-change-one-record)).
///
/// Plain diesel-async queries run on [`conn`](Self::conn), inside the same transaction.
pub struct AsyncAudited<'c, C> {
    conn: &'c mut C,
    /// `Some` inside an audited transaction: where its events wait for the commit.
    pending: Option<&'c mut Vec<Pending>>,
    opts: Options,
}

audited_operations!(
    async [+ Send]: AsyncAudited,
    AsyncWithAction,
    AsyncAuditConnection,
    AsyncInsertValues,
    AsyncUpdateTarget,
    AsyncDeleteTarget
);

/// `conn.audited()` on a diesel-async connection to PostgreSQL (an `AsyncPgConnection`, or a
/// pooled one from deadpool or bb8).
pub trait AsyncAuditedExt: AsyncAuditConnection + Sized {
    /// This connection with audited operations; see [`AsyncAudited`].
    fn audited(&mut self) -> AsyncAudited<'_, Self> {
        AsyncAudited::new(self)
    }
}

impl<C: AsyncAuditConnection> AsyncAuditedExt for C {}

/// The closure of [`AsyncAudited::transaction`]: an async closure taking the transaction
/// (`async |tx| { ... }`) whose future is `Send`, so that a transaction can run in a tokio task
/// or an axum handler. Implemented for every such closure; you do not implement it yourself.
///
/// (The future of an async closure cannot be named on stable Rust; this trait names it, so
/// that the transaction can require it to be `Send`, as diesel-async's own transactions do.)
pub trait AsyncTransactionFn<A, R>: AsyncFnOnce(A) -> R + FnOnce(A) -> <Self as AsyncTransactionFn<A, R>>::Fut {
    /// The closure's future.
    type Fut: Future<Output = R>;
}

impl<F, A, Fut, R> AsyncTransactionFn<A, R> for F
where
    F: AsyncFnOnce(A) -> R + FnOnce(A) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
}

impl<C: AsyncAuditConnection> AsyncAudited<'_, C> {
    /// Runs `f` in a transaction (`BEGIN`, or a savepoint when already inside one). Commits if
    /// `f` returns `Ok`, rolls back otherwise.
    ///
    /// The events of the operations inside are released when the outermost transaction
    /// commits; those of a rolled-back savepoint are dropped with it. Nothing is released for
    /// a transaction that rolls back, and an error from the commit itself releases nothing.
    ///
    /// A transaction whose future is dropped before it finished (a cancelled request) changes
    /// nothing and records nothing: the connection is left inside the transaction, which
    /// diesel-async's pools then discard instead of reusing. Dropped while the commit itself
    /// is under way, it cannot know whether the change committed: it reports its events as
    /// undelivered (stderr and the `audit::undelivered` target). Use the
    /// [outbox](Self::outbox) where that must not happen.
    pub fn transaction<T, E, F>(&mut self, f: F) -> impl Future<Output = Result<T, E>> + Send
    where
        F: for<'t, 'a> AsyncFnOnce(&'t mut AsyncAudited<'a, C>) -> Result<T, E>
            + for<'t, 'a> AsyncTransactionFn<&'t mut AsyncAudited<'a, C>, Result<T, E>, Fut: Send>
            + Send,
        T: Send,
        E: From<Error> + Send,
    {
        self.run_transaction(f)
    }

    async fn run_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: for<'t, 'a> AsyncFnOnce(&'t mut AsyncAudited<'a, C>) -> Result<T, E>
            + for<'t, 'a> AsyncTransactionFn<&'t mut AsyncAudited<'a, C>, Result<T, E>, Fut: Send>
            + Send,
        T: Send,
        E: From<Error> + Send,
    {
        let AsyncAudited { conn, pending, opts } = self;
        match pending {
            Some(pending) => {
                let mark = pending.len();
                begin(*conn).await.map_err(|e| E::from(Error::Database(e)))?;
                let result = {
                    let mut inner = AsyncAudited {
                        conn: &mut **conn,
                        pending: Some(&mut **pending),
                        opts: opts.clone(),
                    };
                    f(&mut inner).await
                };
                let result = finish(*conn, result).await;
                if result.is_err() {
                    pending.truncate(mark);
                }
                result
            }
            None => {
                ops::begin_checks(conn.in_plain_transaction()?, opts)?;
                let mut events = Vec::new();
                begin(*conn).await.map_err(|e| E::from(Error::Database(e)))?;
                let result = {
                    let mut inner = AsyncAudited {
                        conn: &mut **conn,
                        pending: Some(&mut events),
                        opts: opts.clone(),
                    };
                    f(&mut inner).await
                };
                let at_stake = if result.is_ok() { events.len() } else { 0 };
                let value = Committing::watch(at_stake, finish(*conn, result)).await?;
                ops::release(events, opts.failure_mode)?;
                Ok(value)
            }
        }
    }

    /// Before an operation's statements: how it is made atomic with its events (see
    /// [`Route`]), with the checks and the `BEGIN` that route needs.
    async fn open(&mut self, single_statement: bool, writes_outbox: bool) -> Result<Route, Error> {
        let route = Route::of(
            self.pending.is_some(),
            || self.conn.in_plain_transaction(),
            single_statement,
            writes_outbox,
            &self.opts,
        )?;
        match route {
            Route::OwnStatement => audit_runtime::ensure_sink(self.opts.failure_mode)?,
            Route::OwnTransaction => {
                ops::sink_check(&self.opts)?;
                begin(self.conn).await?;
            }
            Route::Held | Route::OwnStatementWithOutbox => {}
        }
        Ok(route)
    }

    /// After an operation's statements: its events held for the commit, written to the
    /// outbox, or released; the transaction of [`Route::OwnTransaction`] committed (or rolled
    /// back when `captured` is an error) first.
    async fn close<R>(&mut self, route: Route, captured: Result<(R, Vec<Captured>), Error>) -> Result<R, Error> {
        match route {
            Route::Held => {
                let (value, captured) = captured?;
                let pending = self.pending.as_deref_mut().expect("held inside a transaction");
                let rows = ops::hold(pending, captured, &self.opts);
                if !rows.is_empty() {
                    async_capture::outbox_insert(self.conn, &rows).await?;
                }
                Ok(value)
            }
            Route::OwnStatementWithOutbox => Ok(captured?.0),
            Route::OwnStatement => {
                let (value, captured) = captured?;
                ops::release(ops::pending(captured), self.opts.failure_mode)?;
                Ok(value)
            }
            Route::OwnTransaction => {
                let mut events = Vec::new();
                let held: Result<R, Error> = async {
                    let (value, captured) = captured?;
                    let rows = ops::hold(&mut events, captured, &self.opts);
                    if !rows.is_empty() {
                        async_capture::outbox_insert(self.conn, &rows).await?;
                    }
                    Ok(value)
                }
                .await;
                let at_stake = if held.is_ok() { events.len() } else { 0 };
                let value = Committing::watch(at_stake, finish(self.conn, held)).await?;
                ops::release(events, self.opts.failure_mode)?;
                Ok(value)
            }
        }
    }

    /// The effective failure mode of these operations.
    fn mode(&self) -> FailureMode {
        self.opts.mode()
    }

    async fn insert_with<'q, T, V, M>(&mut self, action: EventAction, table: T, values: V) -> Result<M, Error>
    where
        V: AsyncInsertValues<'q, C, T, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        let route = self.open(true, false).await?;
        let captured = async {
            let row = values.capture_insert(self.conn, table).await?;
            let captured = ops::created(action, &row);
            Ok((row, vec![captured]))
        }
        .await;
        self.close(route, captured).await
    }

    async fn insert_all_with<'q, T, V, M>(
        &mut self,
        action: EventAction,
        table: T,
        values: Vec<V>,
    ) -> Result<Vec<M>, Error>
    where
        T: Copy,
        V: AsyncInsertValues<'q, C, T, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        let route = self.open(values.len() <= 1, false).await?;
        let conn = &mut *self.conn;
        let captured = async move {
            let mut rows = Vec::with_capacity(values.len());
            let mut captured = Vec::with_capacity(values.len());
            for v in values {
                let row = v.capture_insert(conn, table).await?;
                captured.push(ops::created(action.clone(), &row));
                rows.push(row);
            }
            Ok((rows, captured))
        }
        .await;
        self.close(route, captured).await
    }

    async fn update_with<'q, Tg, V, M>(
        &mut self,
        action: EventAction,
        target: Tg,
        changes: V,
        limit: Limit,
    ) -> Result<Vec<Change<M>>, Error>
    where
        Tg: AsyncUpdateTarget<'q, C, V, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        // With the outbox: one statement that writes the outbox rows too, when the database
        // provably builds the model's snapshots (see `crate::plan`).
        let plan = if self.opts.outbox_in_statement(limit, Dialect::Postgres)
            // (outside an audited transaction, a plain one is refused below: no probe then)
            && (self.pending.is_some() || !self.conn.in_plain_transaction()?)
        {
            Tg::snapshot_plan(self.conn).await
        } else {
            None
        };
        if let Some(plan) = plan {
            let route = self.open(true, true).await?;
            let parts = ops::outbox_parts::<M>(plan, &action, &self.opts);
            let event_id = parts.event_id.clone();
            let captured = async {
                let rows = target.capture_update_outboxed(self.conn, changes, limit, parts).await?;
                Ok((ops::check_outboxed(rows, plan, &event_id, &self.opts)?, Vec::new()))
            }
            .await;
            return self.close(route, captured).await;
        }
        let route = self.open(true, false).await?;
        let captured = async {
            let pairs = target.capture_update(self.conn, changes, limit).await?;
            Ok(ops::updated(&action, pairs, &self.opts))
        }
        .await;
        self.close(route, captured).await
    }

    async fn delete_with<'q, Tg, M>(&mut self, action: EventAction, target: Tg, limit: Limit) -> Result<Vec<M>, Error>
    where
        Tg: AsyncDeleteTarget<'q, C, M>,
        M: AuditModel,
    {
        let action = resolve(action, self.mode(), self.opts.outbox)?;
        let route = self.open(true, false).await?;
        let captured = async {
            let rows = target.capture_delete(self.conn, limit).await?;
            let captured = ops::deleted(&action, &rows);
            Ok((rows, captured))
        }
        .await;
        self.close(route, captured).await
    }
}

/// Watches the end of a transaction whose events are released after it: if its commit's
/// future is dropped while under way, whether the change committed is unknown, and its events
/// will not be released; that is reported loudly rather than passed over. `events` is the
/// number of events at stake: none for a rollback, which has nothing to report.
struct Committing {
    events: usize,
    armed: bool,
}

impl Committing {
    async fn watch<T>(events: usize, commit: impl Future<Output = T>) -> T {
        let mut watch = Committing {
            events,
            armed: events > 0,
        };
        let out = commit.await;
        watch.armed = false;
        out
    }
}

impl Drop for Committing {
    fn drop(&mut self) {
        if self.armed {
            let message = format!(
                "audit: an audited diesel-async transaction was cancelled while committing: whether its change \
                 committed is unknown, and its {} event(s) were not recorded (use the outbox where this must not happen)",
                self.events
            );
            tracing::error!(target: "audit::undelivered", events = self.events, "{message}");
            eprintln!("{message}");
        }
    }
}

impl Relay {
    /// [`run_once`](Self::run_once) on a diesel-async connection: delivers one batch in one
    /// transaction; returns how many rows it took off the outbox.
    ///
    /// Flushing the writer and reading `store` block the thread they run on (both wait for
    /// the disk or the store's database), as in the sync relay: run the relay in a task of
    /// its own, not inside a request.
    pub async fn run_once_async<C: AsyncAuditConnection>(
        &mut self,
        conn: &mut C,
        guard: &WriterGuard,
        store: &mut (dyn RecordSource + Send),
    ) -> Result<usize, Error> {
        begin(conn).await?;
        let delivered: Result<usize, Error> = async {
            let rows = async_capture::outbox_fetch(conn, self.batch()).await?;
            if rows.is_empty() {
                return Ok(0);
            }
            let seqs = self.emit(&rows, guard, store)?;
            async_capture::outbox_delete(conn, &seqs).await?;
            Ok(seqs.len())
        }
        .await;
        let delivered = finish(conn, delivered).await?;
        // The deletion committed: the events of this batch are settled.
        self.settle();
        Ok(delivered)
    }

    /// Runs [`run_once_async`](Self::run_once_async) until the outbox is empty; returns the
    /// total.
    pub async fn drain_async<C: AsyncAuditConnection>(
        &mut self,
        conn: &mut C,
        guard: &WriterGuard,
        store: &mut (dyn RecordSource + Send),
    ) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let n = self.run_once_async(conn, guard, store).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }
}
