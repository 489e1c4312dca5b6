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

/// The name of table `T` as the backend renders it, for error messages.
fn table_name<T: QuerySource, DB>(from: &T::FromClause) -> String
where
    T::FromClause: QueryFragment<DB>,
    DB: diesel::backend::Backend + Default,
    DB::QueryBuilder: Default,
{
    let sql = diesel::debug_query::<DB, _>(from).to_string();
    let sql = sql.split(" -- binds").next().unwrap_or_default();
    sql.replace(['"', '`'], "")
}

type FromOf<T> = <T as QuerySource>::FromClause;
type Cap<T, W, V, M, C, const K: u8> = Capture<T, FromOf<T>, W, V, M, <C as Connection>::Backend, K>;

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
    fn check(&self, matched: usize, table: impl FnOnce() -> String) -> Result<(), Error> {
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
            let table = T::default();
            let from = table.from_clause();
            let from_sql = fragment_sql::<C::Backend, _>(&from);
            let columns = plan::selected_columns(&fragment_sql::<C::Backend, _>(&M::as_select()), &from_sql)?;
            // In a savepoint (or its own transaction): a failed probe leaves an enclosing
            // transaction usable. Any failure means "not eligible".
            let probed = conn.transaction(|conn| {
                plan::derive::<M, Error>(&columns, |true_column| {
                    let q: Cap<T, (), (), M, C, { sql::PROBE }> =
                        Capture::new(from.clone(), (), (), 1, &[]).with(Extra::Probe(ProbeParts {
                            columns: columns.clone(),
                            table: from_sql.clone(),
                            true_column: true_column.to_owned(),
                        }));
                    let (model, values): (M, String) = q.get_result(conn)?;
                    let values = serde_json::from_str(&values).map_err(|e| Error::Outbox {
                        event_id: String::new(),
                        message: format!("probe values: {e}"),
                    })?;
                    Ok(Probe { model, values })
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
        let target = self.into_update_target();
        let from = target.table.from_clause();
        let name = || table_name::<T, C::Backend>(&from);
        let keys = sql::primary_key_names::<T, C::Backend>(&target.table);
        let q: Cap<T, W, _, M, C, { sql::UPDATE_OUTBOX }> = Capture::new(
            from.clone(),
            target.where_clause.clone(),
            values.as_changeset(),
            limit.cap,
            keys,
        )
        .with(Extra::Outbox(Box::new(parts)));
        let rows: Vec<(M, M, String)> = q.load(conn)?;
        if rows.is_empty() {
            explain_empty::<T, W, M, C>(conn, from.clone(), target.where_clause, limit, &name)?;
        }
        Ok(rows)
    }

    fn capture_update(self, conn: &mut C, values: V, limit: Limit) -> Result<Vec<(M, M)>, Error> {
        let target = self.into_update_target();
        let from = target.table.from_clause();
        let name = || table_name::<T, C::Backend>(&from);
        let changeset = values.as_changeset();
        match C::DIALECT {
            Dialect::Postgres => {
                let keys = sql::primary_key_names::<T, C::Backend>(&target.table);
                let q: Cap<T, W, _, M, C, { sql::UPDATE_CTE }> =
                    Capture::new(from.clone(), target.where_clause.clone(), changeset, limit.cap, keys);
                let pairs: Vec<(M, M)> = q.load(conn)?;
                if pairs.is_empty() {
                    explain_empty::<T, W, M, C>(conn, from.clone(), target.where_clause, limit, &name)?;
                }
                Ok(pairs)
            }
            Dialect::Sqlite => {
                // Inside BEGIN IMMEDIATE (the caller's job): no writer can come between the
                // read and the update, so both see the same rows.
                let before = read_before::<T, W, M, C>(conn, from.clone(), target.where_clause.clone(), limit)?;
                limit.check(before.len(), name)?;
                if before.is_empty() {
                    return Ok(Vec::new());
                }
                let q: Cap<T, W, _, M, C, { sql::UPDATE_RETURNING }> =
                    Capture::new(from.clone(), target.where_clause, changeset, limit.cap, &[]);
                let after: Vec<M> = q.load(conn)?;
                pair(before, after, name)
            }
        }
    }
}

/// SQLite: the before-images, at most `cap + 1` of them (enough to see the cap exceeded).
/// The statement has no `LIMIT` (see [`Capture`]): reading stops there and the statement is
/// reset when the iterator is dropped.
fn read_before<'q, T, W, M, C>(
    conn: &mut C,
    from: T::FromClause,
    where_clause: W,
    limit: Limit,
) -> Result<Vec<M>, Error>
where
    C: AuditConnection,
    T: Table,
    M: Selectable<C::Backend>,
    Cap<T, W, (), M, C, { sql::SELECT }>: LoadQuery<'q, C, M>,
{
    let q: Cap<T, W, (), M, C, { sql::SELECT }> = Capture::new(from, where_clause, (), limit.cap, &[]);
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

fn explain_empty<'q, T, W, M, C>(
    conn: &mut C,
    from: T::FromClause,
    where_clause: W,
    limit: Limit,
    name: &dyn Fn() -> String,
) -> Result<(), Error>
where
    C: AuditConnection,
    T: Table,
    M: Selectable<C::Backend>,
    Cap<T, W, (), M, C, { sql::COUNT }>: LoadQuery<'q, C, i64>,
{
    let q: Cap<T, W, (), M, C, { sql::COUNT }> = Capture::new(from, where_clause, (), limit.cap, &[]);
    let n: i64 = q.get_result(conn)?;
    limit.check(n.max(0) as usize, name)
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
        let target = self.into_update_target();
        let from = target.table.from_clause();
        let name = || table_name::<T, C::Backend>(&from);
        match C::DIALECT {
            Dialect::Postgres => {
                let keys = sql::primary_key_names::<T, C::Backend>(&target.table);
                let q: Cap<T, W, (), M, C, { sql::DELETE_CTE }> =
                    Capture::new(from.clone(), target.where_clause.clone(), (), limit.cap, keys);
                let rows: Vec<M> = q.load(conn)?;
                if rows.is_empty() {
                    explain_empty::<T, W, M, C>(conn, from.clone(), target.where_clause, limit, &name)?;
                }
                Ok(rows)
            }
            Dialect::Sqlite => {
                let before = read_before::<T, W, M, C>(conn, from.clone(), target.where_clause.clone(), limit)?;
                limit.check(before.len(), name)?;
                if before.is_empty() {
                    return Ok(Vec::new());
                }
                let q: Cap<T, W, (), M, C, { sql::DELETE_RETURNING }> =
                    Capture::new(from.clone(), target.where_clause, (), limit.cap, &[]);
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
    use crate::outbox::audit_outbox;

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
            diesel::sql_query(
                "CREATE TABLE IF NOT EXISTS audit_outbox (\
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, \
                 event_id TEXT NOT NULL UNIQUE, \
                 event TEXT NOT NULL)",
            )
            .execute(self)
            .map(drop)
        }

        fn outbox_insert(&mut self, rows: &[OutboxRow]) -> QueryResult<()> {
            for row in rows {
                diesel::insert_into(audit_outbox::table)
                    .values((
                        audit_outbox::event_id.eq(&row.event_id),
                        audit_outbox::event.eq(&row.event),
                    ))
                    .execute(self)?;
            }
            Ok(())
        }

        fn outbox_fetch(&mut self, limit: i64) -> QueryResult<Vec<(i64, OutboxRow)>> {
            let rows: Vec<(i64, String, String)> = audit_outbox::table
                .select((audit_outbox::seq, audit_outbox::event_id, audit_outbox::event))
                .order(audit_outbox::seq)
                .limit(limit)
                .load(self)?;
            Ok(rows
                .into_iter()
                .map(|(s, event_id, event)| (s, OutboxRow { event_id, event }))
                .collect())
        }

        fn outbox_delete(&mut self, seqs: &[i64]) -> QueryResult<usize> {
            diesel::delete(audit_outbox::table.filter(audit_outbox::seq.eq_any(seqs))).execute(self)
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use diesel::prelude::*;

    use super::*;
    use crate::outbox::audit_outbox;

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
            diesel::sql_query(
                "CREATE TABLE IF NOT EXISTS audit_outbox (\
                 seq BIGSERIAL PRIMARY KEY, \
                 event_id TEXT NOT NULL UNIQUE, \
                 event TEXT NOT NULL)",
            )
            .execute(self)
            .map(drop)
        }

        fn outbox_insert(&mut self, rows: &[OutboxRow]) -> QueryResult<()> {
            let values: Vec<_> = rows
                .iter()
                .map(|row| {
                    (
                        audit_outbox::event_id.eq(&row.event_id),
                        audit_outbox::event.eq(&row.event),
                    )
                })
                .collect();
            diesel::insert_into(audit_outbox::table)
                .values(&values)
                .execute(self)
                .map(drop)
        }

        fn outbox_fetch(&mut self, limit: i64) -> QueryResult<Vec<(i64, OutboxRow)>> {
            // SKIP LOCKED: a second relay on the same outbox takes other rows instead of
            // delivering these twice.
            let rows: Vec<(i64, String, String)> = audit_outbox::table
                .select((audit_outbox::seq, audit_outbox::event_id, audit_outbox::event))
                .order(audit_outbox::seq)
                .limit(limit)
                .for_update()
                .skip_locked()
                .load(self)?;
            Ok(rows
                .into_iter()
                .map(|(s, event_id, event)| (s, OutboxRow { event_id, event }))
                .collect())
        }

        fn outbox_delete(&mut self, seqs: &[i64]) -> QueryResult<usize> {
            diesel::delete(audit_outbox::table.filter(audit_outbox::seq.eq_any(seqs))).execute(self)
        }
    }
}
