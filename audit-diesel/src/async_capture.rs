//! The capture statements on diesel-async connections to PostgreSQL: the statements of the
//! sync connections ([`crate::sql`]), built from the same parts ([`Target`], [`Prober`],
//! [`outboxed`]), loaded through diesel-async; and the transaction steps the async audited
//! connection drives itself.

use std::future::Future;

use audit_runtime::AuditModel;
use diesel::QueryResult;
use diesel::dsl::AsSelect as SelectBy;
use diesel::pg::Pg;
use diesel::query_builder::{IntoUpdateTarget, QueryFragment};
use diesel::{AsChangeset, Selectable, Table};
use diesel_async::methods::LoadQuery;
use diesel_async::{AsyncConnection, RunQueryDsl, TransactionManager};

use crate::capture::{FromOf, Limit, Prober, Stmt, Target, outboxed};
use crate::error::Error;
use crate::outbox::{self, OutboxRow};
use crate::plan::{self, SnapshotPlan};
use crate::sql::{self, InsertReturning, OutboxParts};

/// A diesel-async connection to PostgreSQL that audited operations run on:
/// [`AsyncPgConnection`](diesel_async::AsyncPgConnection), or a pooled one (a deadpool
/// `Object`, a bb8 `PooledConnection`), or any other type diesel-async treats as a PostgreSQL
/// connection. Implemented for all of them; you do not implement it yourself.
pub trait AsyncAuditConnection: AsyncConnection<Backend = Pg> {
    /// Creates the outbox table (`audit_outbox`) if it does not exist.
    fn create_outbox(&mut self) -> impl Future<Output = QueryResult<()>> + Send {
        async move { diesel::sql_query(outbox::CREATE_POSTGRES).execute(self).await.map(drop) }
    }

    /// Whether a plain (unaudited) diesel-async transaction is open on this connection.
    fn in_plain_transaction(&mut self) -> Result<bool, Error> {
        let status = Self::TransactionManager::transaction_manager_status_mut(self);
        Ok(status.transaction_depth()?.is_some())
    }
}

impl<C: AsyncConnection<Backend = Pg>> AsyncAuditConnection for C {}

/// `BEGIN`, or a savepoint inside a transaction.
pub(crate) async fn begin<C: AsyncAuditConnection>(conn: &mut C) -> QueryResult<()> {
    C::TransactionManager::begin_transaction(conn).await
}

/// Commits when `result` is `Ok`, rolls back otherwise, as diesel-async's own transactions
/// do: a failed rollback is reported instead of the error that caused it, unless the
/// connection was already broken (then the original error says more).
pub(crate) async fn finish<C, T, E>(conn: &mut C, result: Result<T, E>) -> Result<T, E>
where
    C: AsyncAuditConnection,
    E: From<Error>,
{
    match result {
        Ok(value) => {
            C::TransactionManager::commit_transaction(conn)
                .await
                .map_err(|e| E::from(Error::Database(e)))?;
            Ok(value)
        }
        Err(error) => match C::TransactionManager::rollback_transaction(conn).await {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(E::from(Error::Database(rollback))),
        },
    }
}

pub(crate) async fn outbox_insert<C: AsyncAuditConnection>(conn: &mut C, rows: &[OutboxRow]) -> QueryResult<()> {
    diesel::insert_into(outbox::audit_outbox::table)
        .values(outbox::values(rows))
        .execute(conn)
        .await
        .map(drop)
}

pub(crate) async fn outbox_fetch<C: AsyncAuditConnection>(
    conn: &mut C,
    limit: i64,
) -> QueryResult<Vec<(i64, OutboxRow)>> {
    use diesel::QueryDsl;
    // SKIP LOCKED: a second relay on the same outbox takes other rows instead of delivering
    // these twice.
    let rows = outbox::oldest(limit).for_update().skip_locked().load(conn).await?;
    Ok(outbox::loaded(rows))
}

pub(crate) async fn outbox_delete<C: AsyncAuditConnection>(conn: &mut C, seqs: &[i64]) -> QueryResult<usize> {
    outbox::delivered(seqs).execute(conn).await
}

/// Values (an `Insertable`) that can be inserted into table `T` and read back as model `M`
/// on the diesel-async connection `C`.
///
/// Implemented for every diesel insertable whose `INSERT ... RETURNING` can run; you do not
/// implement it yourself.
pub trait AsyncInsertValues<'q, C, T, M>: Sized {
    #[doc(hidden)]
    fn capture_insert(self, conn: &mut C, table: T) -> impl Future<Output = Result<M, Error>> + Send;
}

impl<'q, V, C, T, M> AsyncInsertValues<'q, C, T, M> for V
where
    C: AsyncAuditConnection,
    T: Table,
    V: diesel::Insertable<T>,
    M: AuditModel + Selectable<Pg> + Send,
    InsertReturning<FromOf<T>, V::Values, M, Pg>: LoadQuery<'q, C, M> + Send + 'q,
{
    fn capture_insert(self, conn: &mut C, table: T) -> impl Future<Output = Result<M, Error>> + Send {
        let q: InsertReturning<FromOf<T>, V::Values, M, Pg> = InsertReturning::new(table.from_clause(), self.values());
        async move { Ok(q.get_result(conn).await?) }
    }
}

/// A target (`customers.find(id)`, `customers.filter(...)`, a table) whose rows can be
/// updated with changeset `V` and captured as model `M` on the diesel-async connection `C`.
///
/// Implemented for every diesel update target whose statements can run, for models that are
/// `'static` (the one-statement outbox plan is kept per model type); you do not implement it
/// yourself. `'q` is the lifetime of the statement's borrowed binds.
pub trait AsyncUpdateTarget<'q, C, V, M>: Sized {
    #[doc(hidden)]
    fn capture_update(
        self,
        conn: &mut C,
        values: V,
        limit: Limit,
    ) -> impl Future<Output = Result<Vec<(M, M)>, Error>> + Send;

    /// How one statement can write the outbox rows of this update itself, if it provably can
    /// (see [`crate::plan`]).
    #[doc(hidden)]
    fn snapshot_plan(conn: &mut C) -> impl Future<Output = Option<&'static SnapshotPlan>> + Send;

    /// [`capture_update`](Self::capture_update) that also inserts each row's event into the
    /// outbox, in the same statement; returns the events as written.
    #[doc(hidden)]
    fn capture_update_outboxed(
        self,
        conn: &mut C,
        values: V,
        limit: Limit,
        parts: OutboxParts,
    ) -> impl Future<Output = Result<Vec<(M, M, String)>, Error>> + Send;
}

/// A target whose rows can be deleted and captured as model `M` on the diesel-async
/// connection `C`.
///
/// Implemented for every diesel delete target whose statements can run; you do not implement
/// it yourself.
pub trait AsyncDeleteTarget<'q, C, M>: Sized {
    #[doc(hidden)]
    fn capture_delete(self, conn: &mut C, limit: Limit) -> impl Future<Output = Result<Vec<M>, Error>> + Send;
}

impl<'q, Tg, C, V, M, T, W> AsyncUpdateTarget<'q, C, V, M> for Tg
where
    C: AsyncAuditConnection,
    Tg: IntoUpdateTarget<Table = T, WhereClause = W>,
    T: Table + Default + Send + 'static,
    T::FromClause: QueryFragment<Pg> + Clone + Send + Sync,
    T::PrimaryKey: QueryFragment<Pg>,
    W: Clone + Send,
    V: AsChangeset<Target = T>,
    M: AuditModel + Selectable<Pg> + Send + 'static,
    SelectBy<M, Pg>: QueryFragment<Pg>,
    Stmt<T, W, V::Changeset, M, Pg, { sql::UPDATE_CTE }>: LoadQuery<'q, C, (M, M)> + Send + 'q,
    Stmt<T, W, V::Changeset, M, Pg, { sql::UPDATE_OUTBOX }>: LoadQuery<'q, C, (M, M, String)> + Send + 'q,
    Stmt<T, (), (), M, Pg, { sql::PROBE }>: LoadQuery<'q, C, (M, String)> + Send + 'q,
    Stmt<T, W, (), M, Pg, { sql::COUNT }>: LoadQuery<'q, C, i64> + Send + 'q,
{
    async fn snapshot_plan(conn: &mut C) -> Option<&'static SnapshotPlan> {
        if let Some(plan) = plan::lookup::<M, T>() {
            return plan;
        }
        // Built without the cache's lock (it queries the database).
        let built = probe_plan::<T, M, C>(conn).await;
        plan::store::<M, T>(built)
    }

    fn capture_update_outboxed(
        self,
        conn: &mut C,
        values: V,
        limit: Limit,
        parts: OutboxParts,
    ) -> impl Future<Output = Result<Vec<(M, M, String)>, Error>> + Send {
        let target = Target::new(self);
        let q: Stmt<T, W, _, M, Pg, { sql::UPDATE_OUTBOX }> = outboxed(&target, values.as_changeset(), limit, parts);
        async move {
            let rows: Vec<(M, M, String)> = q.load(conn).await?;
            if rows.is_empty() {
                explain_empty(conn, target.count::<M, Pg>(limit), target.name::<Pg>(), limit).await?;
            }
            Ok(rows)
        }
    }

    fn capture_update(
        self,
        conn: &mut C,
        values: V,
        limit: Limit,
    ) -> impl Future<Output = Result<Vec<(M, M)>, Error>> + Send {
        let target = Target::new(self);
        let q: Stmt<T, W, _, M, Pg, { sql::UPDATE_CTE }> = target.statement(values.as_changeset(), limit);
        async move {
            let pairs: Vec<(M, M)> = q.load(conn).await?;
            if pairs.is_empty() {
                explain_empty(conn, target.count::<M, Pg>(limit), target.name::<Pg>(), limit).await?;
            }
            Ok(pairs)
        }
    }
}

impl<'q, Tg, C, M, T, W> AsyncDeleteTarget<'q, C, M> for Tg
where
    C: AsyncAuditConnection,
    Tg: IntoUpdateTarget<Table = T, WhereClause = W>,
    T: Table + Send + 'static,
    T::FromClause: QueryFragment<Pg> + Clone + Send + Sync,
    T::PrimaryKey: QueryFragment<Pg>,
    W: Clone + Send,
    M: AuditModel + Selectable<Pg> + Send + 'static,
    Stmt<T, W, (), M, Pg, { sql::DELETE_CTE }>: LoadQuery<'q, C, M> + Send + 'q,
    Stmt<T, W, (), M, Pg, { sql::COUNT }>: LoadQuery<'q, C, i64> + Send + 'q,
{
    fn capture_delete(self, conn: &mut C, limit: Limit) -> impl Future<Output = Result<Vec<M>, Error>> + Send {
        let target = Target::new(self);
        let q: Stmt<T, W, (), M, Pg, { sql::DELETE_CTE }> = target.statement((), limit);
        async move {
            let rows: Vec<M> = q.load(conn).await?;
            if rows.is_empty() {
                explain_empty(conn, target.count::<M, Pg>(limit), target.name::<Pg>(), limit).await?;
            }
            Ok(rows)
        }
    }
}

/// Why a capture returned no rows: an error when none matched a single-row operation, or more
/// than the cap matched. `count` is [`Target::count`], `table` the target's name.
async fn explain_empty<'q, C, Q>(conn: &mut C, count: Q, table: String, limit: Limit) -> Result<(), Error>
where
    C: AsyncAuditConnection,
    Q: LoadQuery<'q, C, i64> + Send + 'q,
{
    let n: i64 = count.get_result(conn).await?;
    limit.check(n.max(0) as usize, || table)
}

/// The plan of `(M, T)` from probes (see [`crate::plan`]), run in a savepoint (or a
/// transaction of its own) so that a failed probe leaves an enclosing transaction usable. Any
/// failure means "not eligible".
async fn probe_plan<'q, T, M, C>(conn: &'_ mut C) -> Option<SnapshotPlan>
where
    C: AsyncAuditConnection,
    T: Table + Default,
    T::FromClause: QueryFragment<Pg> + Clone + Send + Sync,
    M: AuditModel + Selectable<Pg> + Send,
    SelectBy<M, Pg>: QueryFragment<Pg>,
    Stmt<T, (), (), M, Pg, { sql::PROBE }>: LoadQuery<'q, C, (M, String)> + Send + 'q,
{
    let prober = Prober::<T>::new::<M, Pg>()?;
    begin(conn).await.ok()?;
    let derived = async {
        let first = probe::<T, M, C>(&prober, conn, "").await?;
        let Some(bools) = plan::boolean_columns(prober.columns(), &first) else {
            return Ok(None);
        };
        let mut probes = vec![first];
        for column in &bools {
            probes.push(probe::<T, M, C>(&prober, conn, column).await?);
        }
        Ok::<_, Error>(plan::from_probes(prober.columns(), &probes))
    }
    .await;
    finish(conn, derived).await.ok().flatten()
}

async fn probe<'q, T, M, C>(prober: &Prober<T>, conn: &mut C, true_column: &str) -> Result<plan::Probe<M>, Error>
where
    C: AsyncAuditConnection,
    T: Table + Default,
    T::FromClause: Clone,
    M: Selectable<Pg> + Send,
    Stmt<T, (), (), M, Pg, { sql::PROBE }>: LoadQuery<'q, C, (M, String)> + Send + 'q,
{
    let q: Stmt<T, (), (), M, Pg, { sql::PROBE }> = prober.statement(true_column);
    crate::capture::probed(q.get_result(conn).await?)
}
