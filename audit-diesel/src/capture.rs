//! The capture statements per operation, and the connections they run on.

use std::collections::HashMap;

use audit_runtime::AuditModel;
use diesel::connection::{AnsiTransactionManager, LoadConnection};
use diesel::dsl::AsSelect as SelectBy;
use diesel::query_builder::{IntoUpdateTarget, QueryFragment};
use diesel::query_dsl::LoadQuery;
use diesel::{AsChangeset, Connection, QuerySource, RunQueryDsl, Selectable, SelectableHelper, Table};

use crate::error::Error;
use crate::outbox::OutboxRow;
use crate::plan::{self, Probe, SnapshotPlan};
use crate::sql::{self, Capture, Dialect, Extra, InsertReturning, OutboxParts, ProbeParts};

/// A diesel connection that audited operations run on: SQLite
/// ([`diesel::SqliteConnection`]) or PostgreSQL ([`diesel::PgConnection`]), depending on the
/// crate features.
pub trait AuditConnection: Connection<TransactionManager = AnsiTransactionManager> + LoadConnection + 'static {
    /// The SQL dialect of the capture statements.
    const DIALECT: Dialect;

    /// Runs `f` in a transaction that keeps the before-state read and the write from racing:
    /// `BEGIN IMMEDIATE` on SQLite (the write lock is taken before the read), a plain
    /// transaction on PostgreSQL (where the read takes row locks with `FOR UPDATE`).
    fn audit_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>;

    /// Creates the outbox table (`audit_outbox`) if it does not exist.
    fn create_outbox(&mut self) -> diesel::QueryResult<()>;

    #[doc(hidden)]
    fn outbox_insert(&mut self, rows: &[OutboxRow]) -> diesel::QueryResult<()>;

    #[doc(hidden)]
    fn outbox_fetch(&mut self, limit: i64) -> diesel::QueryResult<Vec<(i64, OutboxRow)>>;

    #[doc(hidden)]
    fn outbox_delete(&mut self, seqs: &[i64]) -> diesel::QueryResult<usize>;

    /// Whether a plain (unaudited) diesel transaction is open on this connection.
    fn in_plain_transaction(&mut self) -> Result<bool, Error> {
        use diesel::connection::TransactionManager;
        let status = AnsiTransactionManager::transaction_manager_status_mut(self);
        Ok(status.transaction_depth()?.is_some())
    }
}

/// The SQL of a fragment without binds, as the backend renders it.
fn fragment_sql<DB, Q>(fragment: &Q) -> String
where
    Q: QueryFragment<DB>,
    DB: diesel::backend::Backend + Default,
    DB::QueryBuilder: Default,
{
    let sql = diesel::debug_query::<DB, _>(fragment).to_string();
    sql.split(" -- binds").next().unwrap_or_default().to_owned()
}

pub(crate) type FromOf<T> = <T as QuerySource>::FromClause;
/// A capture statement of kind `K` over table `T` for backend `DB` (see [`Capture`]).
pub(crate) type Stmt<T, W, V, M, DB, const K: u8> = Capture<T, FromOf<T>, W, V, M, DB, K>;
type Cap<T, W, V, M, C, const K: u8> = Stmt<T, W, V, M, <C as Connection>::Backend, K>;

/// How many rows a capture may touch, and what to call it in errors.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// Most rows.
    pub cap: usize,
    /// `true` for the single-row operations (`update`, `delete`): more than one row is
    /// [`Error::NotUnique`], none is [`Error::NotFound`].
    pub single: bool,
    /// The operation, for messages.
    pub operation: &'static str,
}

impl Limit {
    /// The limit of a single-row operation.
    pub(crate) fn single(operation: &'static str) -> Self {
        Limit {
            cap: 1,
            single: true,
            operation,
        }
    }

    /// The limit of a bulk operation: at most `cap` rows.
    pub(crate) fn bulk(operation: &'static str, cap: usize) -> Self {
        Limit {
            cap,
            single: false,
            operation,
        }
    }

    pub(crate) fn check(&self, matched: usize, table: impl FnOnce() -> String) -> Result<(), Error> {
        if matched > self.cap {
            let table = table();
            return Err(if self.single {
                Error::NotUnique {
                    operation: self.operation,
                    table,
                }
            } else {
                Error::TooManyRows {
                    operation: self.operation,
                    table,
                    cap: self.cap,
                }
            });
        }
        if matched == 0 && self.single {
            return Err(Error::NotFound {
                operation: self.operation,
                table: table(),
            });
        }
        Ok(())
    }
}

/// A diesel target (`customers.find(id)`, `customers.filter(...)`, a table) taken apart for
/// the capture statements, which the sync and the async connections both build from it.
pub(crate) struct Target<T: QuerySource, W> {
    table: T,
    from: T::FromClause,
    where_clause: W,
}

impl<T, W> Target<T, W>
where
    T: Table + 'static,
    T::FromClause: Clone,
    W: Clone,
{
    pub fn new<Tg: IntoUpdateTarget<Table = T, WhereClause = W>>(target: Tg) -> Self {
        let target = target.into_update_target();
        Target {
            from: target.table.from_clause(),
            where_clause: target.where_clause,
            table: target.table,
        }
    }

    /// The table's name as the backend renders it, for error messages.
    pub fn name<DB>(&self) -> String
    where
        T::FromClause: QueryFragment<DB>,
        DB: diesel::backend::Backend + Default,
        DB::QueryBuilder: Default,
    {
        fragment_sql::<DB, _>(&self.from).replace(['"', '`'], "")
    }

    /// The statement of kind `K` over this target with changeset `values` (`()` for none),
    /// selecting model `M`, touching at most `limit.cap` rows.
    pub fn statement<V, M, DB, const K: u8>(&self, values: V, limit: Limit) -> Stmt<T, W, V, M, DB, K>
    where
        M: Selectable<DB>,
        T::PrimaryKey: QueryFragment<DB>,
        DB: diesel::backend::Backend + Default + 'static,
        DB::QueryBuilder: Default,
    {
        // Only the statements that join the locked rows back on the primary key name it (the
        // others skip the lookup, which takes a lock, on SQLite's hot path).
        let keys = match K {
            sql::UPDATE_CTE | sql::DELETE_CTE | sql::UPDATE_OUTBOX => sql::primary_key_names::<T, DB>(&self.table),
            _ => &[],
        };
        Capture::new(self.from.clone(), self.where_clause.clone(), values, limit.cap, keys)
    }

    /// `SELECT count(*)` of at most `cap + 1` rows of this target: why a capture that returned
    /// no rows changed nothing (none matched, or more than the cap).
    pub fn count<M, DB>(&self, limit: Limit) -> Stmt<T, W, (), M, DB, { sql::COUNT }>
    where
        M: Selectable<DB>,
        T::PrimaryKey: QueryFragment<DB>,
        DB: diesel::backend::Backend + Default + 'static,
        DB::QueryBuilder: Default,
    {
        self.statement((), limit)
    }
}

/// The probes from which the one-statement outbox plan of model `M` over table `T` is derived
/// (see [`crate::plan`]), for the sync and the async connections.
pub(crate) struct Prober<T: QuerySource> {
    from: T::FromClause,
    /// The table as `to_regclass` takes it.
    table: String,
    columns: Vec<String>,
}

impl<T> Prober<T>
where
    T: Table + Default,
    T::FromClause: Clone,
{
    /// `None` when the model selects anything but plain columns of the table.
    pub fn new<M, DB>() -> Option<Self>
    where
        M: Selectable<DB>,
        SelectBy<M, DB>: QueryFragment<DB>,
        T::FromClause: QueryFragment<DB>,
        DB: diesel::backend::Backend + Default,
        DB::QueryBuilder: Default,
    {
        let from = T::default().from_clause();
        let table = fragment_sql::<DB, _>(&from);
        let columns = plan::selected_columns(&fragment_sql::<DB, _>(&M::as_select()), &table)?;
        Some(Prober { from, table, columns })
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The model loaded from a synthetic row in which boolean column `true_column` alone is
    /// true (`""`: none is), with that row's values.
    pub fn statement<M, DB>(&self, true_column: &str) -> Stmt<T, (), (), M, DB, { sql::PROBE }>
    where
        M: Selectable<DB>,
        DB: diesel::backend::Backend,
    {
        Capture::new(self.from.clone(), (), (), 1, &[]).with(Extra::Probe(ProbeParts {
            columns: self.columns.clone(),
            table: self.table.clone(),
            true_column: true_column.to_owned(),
        }))
    }
}

/// A probe's result row: the model, and the synthetic row's values (see [`Prober::statement`]).
pub(crate) fn probed<M>((model, values): (M, String)) -> Result<Probe<M>, Error> {
    let values = serde_json::from_str(&values).map_err(|e| Error::Outbox {
        event_id: String::new(),
        message: format!("probe values: {e}"),
    })?;
    Ok(Probe { model, values })
}

/// The parts of the one-statement outboxed update (its statement is `UPDATE_OUTBOX`).
pub(crate) fn outboxed<T, W, V, M, DB>(
    target: &Target<T, W>,
    values: V,
    limit: Limit,
    parts: OutboxParts,
) -> Stmt<T, W, V, M, DB, { sql::UPDATE_OUTBOX }>
where
    T: Table + 'static,
    T::FromClause: Clone,
    T::PrimaryKey: QueryFragment<DB>,
    W: Clone,
    M: Selectable<DB>,
    DB: diesel::backend::Backend + Default + 'static,
    DB::QueryBuilder: Default,
{
    target.statement(values, limit).with(Extra::Outbox(Box::new(parts)))
}

/// A target (`customers.find(id)`, `customers.filter(...)`, a table) whose rows can be
/// updated with changeset `V` and captured as model `M` on connection `C`.
///
/// Implemented for every diesel update target whose statements the backend can run, for
/// models that are `'static` (the one-statement outbox plan is kept per model type); you do
/// not implement it yourself. `'q` is the lifetime of the statement's borrowed binds.
pub trait UpdateTarget<'q, C, V, M>: Sized {
    #[doc(hidden)]
    fn capture_update(self, conn: &mut C, values: V, limit: Limit) -> Result<Vec<(M, M)>, Error>;

    /// PostgreSQL: how one statement can write the outbox rows of this update itself, if it
    /// provably can (see [`crate::plan`]).
    #[doc(hidden)]
    fn snapshot_plan(conn: &mut C) -> Option<&'static SnapshotPlan>;

    /// PostgreSQL: [`capture_update`](Self::capture_update) that also inserts each row's event
    /// into the outbox, in the same statement; returns the events as written.
    #[doc(hidden)]
    fn capture_update_outboxed(
        self,
        conn: &mut C,
        values: V,
        limit: Limit,
        parts: OutboxParts,
    ) -> Result<Vec<(M, M, String)>, Error>;
}

/// A target whose rows can be deleted and captured as model `M` on connection `C`.
///
/// Implemented for every diesel delete target whose statements the backend can run; you do
/// not implement it yourself.
pub trait DeleteTarget<'q, C, M>: Sized {
    #[doc(hidden)]
    fn capture_delete(self, conn: &mut C, limit: Limit) -> Result<Vec<M>, Error>;
}

impl<'q, Tg, C, V, M, T, W> UpdateTarget<'q, C, V, M> for Tg
where
    C: AuditConnection,
    C::Backend: Default + 'static,
    <C::Backend as diesel::backend::Backend>::QueryBuilder: Default,
    Tg: IntoUpdateTarget<Table = T, WhereClause = W>,
    T: Table + Default + 'static,
    T::FromClause: QueryFragment<C::Backend> + Clone,
    T::PrimaryKey: QueryFragment<C::Backend>,
    W: Clone,
    V: AsChangeset<Target = T>,
    M: AuditModel + Selectable<C::Backend> + 'static,
    SelectBy<M, C::Backend>: QueryFragment<C::Backend>,
    Cap<T, W, (), M, C, { sql::SELECT }>: LoadQuery<'q, C, M>,
    Cap<T, W, V::Changeset, M, C, { sql::UPDATE_RETURNING }>: LoadQuery<'q, C, M>,
    Cap<T, W, V::Changeset, M, C, { sql::UPDATE_CTE }>: LoadQuery<'q, C, (M, M)>,
    Cap<T, W, V::Changeset, M, C, { sql::UPDATE_OUTBOX }>: LoadQuery<'q, C, (M, M, String)>,
    Cap<T, (), (), M, C, { sql::PROBE }>: LoadQuery<'q, C, (M, String)>,
    Cap<T, W, (), M, C, { sql::COUNT }>: LoadQuery<'q, C, i64>,
{
    fn snapshot_plan(conn: &mut C) -> Option<&'static SnapshotPlan> {
        if C::DIALECT != Dialect::Postgres {
            return None;
        }
        plan::cached::<M, T>(|| {
            let prober = Prober::<T>::new::<M, C::Backend>()?;
            // In a savepoint (or its own transaction): a failed probe leaves an enclosing
            // transaction usable. Any failure means "not eligible".
            let probed = conn.transaction(|conn| {
                plan::derive::<M, Error>(prober.columns(), |true_column| {
                    let q: Cap<T, (), (), M, C, { sql::PROBE }> = prober.statement(true_column);
                    probed(q.get_result(conn)?)
                })
            });
            probed.ok().flatten()
        })
    }

    fn capture_update_outboxed(
        self,
        conn: &mut C,
        values: V,
        limit: Limit,
        parts: OutboxParts,
    ) -> Result<Vec<(M, M, String)>, Error> {
        let target = Target::new(self);
        let q: Cap<T, W, _, M, C, { sql::UPDATE_OUTBOX }> = outboxed(&target, values.as_changeset(), limit, parts);
        let rows: Vec<(M, M, String)> = q.load(conn)?;
        if rows.is_empty() {
            explain_empty::<T, W, M, C>(conn, &target, limit)?;
        }
        Ok(rows)
    }

    fn capture_update(self, conn: &mut C, values: V, limit: Limit) -> Result<Vec<(M, M)>, Error> {
        let target = Target::new(self);
        let changeset = values.as_changeset();
        match C::DIALECT {
            Dialect::Postgres => {
                let q: Cap<T, W, _, M, C, { sql::UPDATE_CTE }> = target.statement(changeset, limit);
                let pairs: Vec<(M, M)> = q.load(conn)?;
                if pairs.is_empty() {
                    explain_empty::<T, W, M, C>(conn, &target, limit)?;
                }
                Ok(pairs)
            }
            Dialect::Sqlite => {
                // Inside BEGIN IMMEDIATE (the caller's job): no writer can come between the
                // read and the update, so both see the same rows.
                let before = read_before::<T, W, M, C>(conn, &target, limit)?;
                limit.check(before.len(), || target.name::<C::Backend>())?;
                if before.is_empty() {
                    return Ok(Vec::new());
                }
                let q: Cap<T, W, _, M, C, { sql::UPDATE_RETURNING }> = target.statement(changeset, limit);
                let after: Vec<M> = q.load(conn)?;
                pair(before, after, || target.name::<C::Backend>())
            }
        }
    }
}

/// SQLite: the before-images, at most `cap + 1` of them (enough to see the cap exceeded).
/// The statement has no `LIMIT` (see [`Capture`]): reading stops there and the statement is
/// reset when the iterator is dropped.
fn read_before<'q, T, W, M, C>(conn: &mut C, target: &Target<T, W>, limit: Limit) -> Result<Vec<M>, Error>
where
    C: AuditConnection,
    C::Backend: Default + 'static,
    <C::Backend as diesel::backend::Backend>::QueryBuilder: Default,
    T: Table + 'static,
    T::FromClause: Clone,
    T::PrimaryKey: QueryFragment<C::Backend>,
    W: Clone,
    M: Selectable<C::Backend>,
    Cap<T, W, (), M, C, { sql::SELECT }>: LoadQuery<'q, C, M>,
{
    let q: Cap<T, W, (), M, C, { sql::SELECT }> = target.statement((), limit);
    let most = limit.cap.saturating_add(1);
    let mut rows = Vec::with_capacity(most.min(64));
    for row in q.load_iter::<M, diesel::connection::DefaultLoadingMode>(conn)? {
        rows.push(row?);
        if rows.len() >= most {
            break;
        }
    }
    Ok(rows)
}

/// Why a capture returned no rows: an error when none matched a single-row operation, or more
/// than the cap matched.
fn explain_empty<'q, T, W, M, C>(conn: &mut C, target: &Target<T, W>, limit: Limit) -> Result<(), Error>
where
    C: AuditConnection,
    C::Backend: Default + 'static,
    <C::Backend as diesel::backend::Backend>::QueryBuilder: Default,
    T: Table + 'static,
    T::FromClause: QueryFragment<C::Backend> + Clone,
    T::PrimaryKey: QueryFragment<C::Backend>,
    W: Clone,
    M: Selectable<C::Backend>,
    Cap<T, W, (), M, C, { sql::COUNT }>: LoadQuery<'q, C, i64>,
{
    let n: i64 = target.count::<M, C::Backend>(limit).get_result(conn)?;
    limit.check(n.max(0) as usize, || target.name::<C::Backend>())
}

/// Pairs before- and after-images by resource id (one of each needs no id).
fn pair<M: AuditModel>(before: Vec<M>, after: Vec<M>, name: impl Fn() -> String) -> Result<Vec<(M, M)>, Error> {
    if before.len() == 1 && after.len() == 1 {
        return Ok(before.into_iter().zip(after).collect());
    }
    let mut by_id: HashMap<String, M> = before.into_iter().map(|m| (m.audit_id(), m)).collect();
    after
        .into_iter()
        .map(|a| {
            let id = a.audit_id();
            match by_id.remove(&id) {
                Some(b) => Ok((b, a)),
                None => Err(Error::Unpaired { table: name(), id }),
            }
        })
        .collect()
}

impl<'q, Tg, C, M, T, W> DeleteTarget<'q, C, M> for Tg
where
    C: AuditConnection,
    C::Backend: Default + 'static,
    <C::Backend as diesel::backend::Backend>::QueryBuilder: Default,
    Tg: IntoUpdateTarget<Table = T, WhereClause = W>,
    T: Table + 'static,
    T::FromClause: QueryFragment<C::Backend> + Clone,
    T::PrimaryKey: QueryFragment<C::Backend>,
    W: Clone,
    M: AuditModel + Selectable<C::Backend>,
    Cap<T, W, (), M, C, { sql::SELECT }>: LoadQuery<'q, C, M>,
    Cap<T, W, (), M, C, { sql::DELETE_RETURNING }>: LoadQuery<'q, C, M>,
    Cap<T, W, (), M, C, { sql::DELETE_CTE }>: LoadQuery<'q, C, M>,
    Cap<T, W, (), M, C, { sql::COUNT }>: LoadQuery<'q, C, i64>,
{
    fn capture_delete(self, conn: &mut C, limit: Limit) -> Result<Vec<M>, Error> {
        let target = Target::new(self);
        match C::DIALECT {
            Dialect::Postgres => {
                let q: Cap<T, W, (), M, C, { sql::DELETE_CTE }> = target.statement((), limit);
                let rows: Vec<M> = q.load(conn)?;
                if rows.is_empty() {
                    explain_empty::<T, W, M, C>(conn, &target, limit)?;
                }
                Ok(rows)
            }
            Dialect::Sqlite => {
                let before = read_before::<T, W, M, C>(conn, &target, limit)?;
                limit.check(before.len(), || target.name::<C::Backend>())?;
                if before.is_empty() {
                    return Ok(Vec::new());
                }
                let q: Cap<T, W, (), M, C, { sql::DELETE_RETURNING }> = target.statement((), limit);
                Ok(q.load(conn)?)
            }
        }
    }
}

/// Values (an `Insertable`) that can be inserted into table `T` and read back as model `M`
/// on connection `C`.
///
/// Implemented for every diesel insertable whose `INSERT ... RETURNING` the backend can run;
/// you do not implement it yourself.
pub trait InsertValues<'q, C, T, M>: Sized {
    #[doc(hidden)]
    fn capture_insert(self, conn: &mut C, table: T) -> Result<M, Error>;
}

impl<'q, V, C, T, M> InsertValues<'q, C, T, M> for V
where
    C: AuditConnection,
    T: Table,
    V: diesel::Insertable<T>,
    M: AuditModel + Selectable<C::Backend>,
    InsertReturning<FromOf<T>, V::Values, M, C::Backend>: LoadQuery<'q, C, M>,
{
    fn capture_insert(self, conn: &mut C, table: T) -> Result<M, Error> {
        let q: InsertReturning<FromOf<T>, V::Values, M, C::Backend> =
            InsertReturning::new(table.from_clause(), self.values());
        Ok(q.get_result(conn)?)
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use diesel::prelude::*;

    use super::*;
    use crate::outbox;

    impl AuditConnection for diesel::SqliteConnection {
        const DIALECT: Dialect = Dialect::Sqlite;

        fn audit_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
        where
            F: FnOnce(&mut Self) -> Result<T, E>,
            E: From<diesel::result::Error>,
        {
            self.immediate_transaction(f)
        }

        fn create_outbox(&mut self) -> QueryResult<()> {
            diesel::sql_query(outbox::CREATE_SQLITE).execute(self).map(drop)
        }

        fn outbox_insert(&mut self, rows: &[OutboxRow]) -> QueryResult<()> {
            for row in outbox::values(rows) {
                diesel::insert_into(outbox::audit_outbox::table)
                    .values(row)
                    .execute(self)?;
            }
            Ok(())
        }

        fn outbox_fetch(&mut self, limit: i64) -> QueryResult<Vec<(i64, OutboxRow)>> {
            Ok(outbox::loaded(outbox::oldest(limit).load(self)?))
        }

        fn outbox_delete(&mut self, seqs: &[i64]) -> QueryResult<usize> {
            outbox::delivered(seqs).execute(self)
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use diesel::prelude::*;

    use super::*;
    use crate::outbox;

    impl AuditConnection for diesel::PgConnection {
        const DIALECT: Dialect = Dialect::Postgres;

        fn audit_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
        where
            F: FnOnce(&mut Self) -> Result<T, E>,
            E: From<diesel::result::Error>,
        {
            self.transaction(f)
        }

        fn create_outbox(&mut self) -> QueryResult<()> {
            diesel::sql_query(outbox::CREATE_POSTGRES).execute(self).map(drop)
        }

        fn outbox_insert(&mut self, rows: &[OutboxRow]) -> QueryResult<()> {
            diesel::insert_into(outbox::audit_outbox::table)
                .values(outbox::values(rows))
                .execute(self)
                .map(drop)
        }

        fn outbox_fetch(&mut self, limit: i64) -> QueryResult<Vec<(i64, OutboxRow)>> {
            // SKIP LOCKED: a second relay on the same outbox takes other rows instead of
            // delivering these twice.
            let rows = outbox::oldest(limit).for_update().skip_locked().load(self)?;
            Ok(outbox::loaded(rows))
        }

        fn outbox_delete(&mut self, seqs: &[i64]) -> QueryResult<usize> {
            outbox::delivered(seqs).execute(self)
        }
    }
}
