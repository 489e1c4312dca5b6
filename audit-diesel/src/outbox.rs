//! The transactional outbox: events written to a table in the same transaction as the change,
//! and a [`Relay`] that moves them into the audit store exactly once.
//!
//! Without the outbox, events are handed to the audit writer right after the commit; a crash
//! in between (or a writer that cannot take them) loses them, which the failure mode reports
//! but cannot undo. With [`Audited::outbox`](crate::Audited::outbox) on, an event is a row of
//! `audit_outbox` committed with the change itself, and the relay delivers it later:
//!
//! 1. reads a batch of rows in commit order (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two
//!    relays never take the same rows);
//! 2. after a restart or a failure, first finds which of them already reached the store (a
//!    previous run may have delivered them and died before deleting them) and skips those;
//! 3. emits the others with their stored id ([`AuditEvent::with_id`]), waits until the writer
//!    has made them durable ([`WriterGuard::flush`]), and only then deletes the rows.
//!
//! So every committed event reaches the store exactly once, whatever is killed when.
//!
//! An outboxed change is always recorded as an event of its own, also inside an `#[audited]`
//! call (see the [crate documentation](crate#inside-audited-calls-one-change-one-record)):
//! the relay runs after the call, maybe in another process. Its action was checked where the
//! change was made; the relay delivers it even if its own vocabulary does not declare that
//! action (reporting it loudly), since a committed change always gets its event and a refused
//! row would hold every later one behind it.
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use audit_diesel::{AuditConnection, Relay};
//! use audit_runtime::{AuditLayer, FileSource, FileStore};
//! use diesel::{Connection, SqliteConnection};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! conn.create_outbox()?;
//! let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path().join("log"))?).build()?;
//! tracing::subscriber::set_global_default(tracing_subscriber::Registry::default().with(layer))?;
//! # use tracing_subscriber::layer::SubscriberExt;
//! // ... audited changes with `.outbox(true)` ...
//! let mut relay = Relay::new();
//! let mut source = FileSource::open(dir.path().join("log"))?;
//! let delivered = relay.drain(&mut conn, &guard, &mut source)?;
//! assert_eq!(delivered, 0);
//! # Ok(()) }
//! # main().unwrap();
//! # }
//! ```

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Mutex;

use audit_runtime::query::{Indexed, Query, RecordSource};
use audit_runtime::{
    Actor, AuditEvent, AuditScope, Category, Changes, Context, FailureMode, Resource, Timestamp, WriterGuard,
};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::action::Resolved;
use crate::capture::AuditConnection;
use crate::error::Error;
use crate::sql::Dialect;

diesel::table! {
    /// The outbox table: one row per event not yet delivered to the audit store.
    audit_outbox (seq) {
        /// Commit order (rows are delivered in it).
        seq -> BigInt,
        /// The event's id (a UUIDv7): the key of exactly-once delivery.
        event_id -> Text,
        /// The event as JSON, with the actor, tenant and context resolved at capture.
        event -> Text,
    }
}

/// One outbox row as written.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub event_id: String,
    pub event: String,
}

/// The outbox table on PostgreSQL (`seq` in commit order, for the relay).
#[cfg(any(feature = "postgres", feature = "async"))]
pub(crate) const CREATE_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS audit_outbox (\
     seq BIGSERIAL PRIMARY KEY, \
     event_id TEXT NOT NULL UNIQUE, \
     event TEXT NOT NULL)";

/// The outbox table on SQLite.
#[cfg(feature = "sqlite")]
pub(crate) const CREATE_SQLITE: &str = "CREATE TABLE IF NOT EXISTS audit_outbox (\
     seq INTEGER PRIMARY KEY AUTOINCREMENT, \
     event_id TEXT NOT NULL UNIQUE, \
     event TEXT NOT NULL)";

/// The oldest `limit` rows of the outbox, in commit order.
#[diesel::dsl::auto_type(no_type_alias)]
pub(crate) fn oldest(limit: i64) -> _ {
    audit_outbox::table
        .select((audit_outbox::seq, audit_outbox::event_id, audit_outbox::event))
        .order(audit_outbox::seq)
        .limit(limit)
}

/// The columns of rows to insert into the outbox.
pub(crate) fn values(rows: &[OutboxRow]) -> Vec<OutboxValues<'_>> {
    rows.iter()
        .map(|row| {
            (
                audit_outbox::event_id.eq(row.event_id.as_str()),
                audit_outbox::event.eq(row.event.as_str()),
            )
        })
        .collect()
}

pub(crate) type OutboxValues<'a> = (
    diesel::dsl::Eq<audit_outbox::event_id, &'a str>,
    diesel::dsl::Eq<audit_outbox::event, &'a str>,
);

/// Outbox rows as loaded by [`oldest`].
pub(crate) fn loaded(rows: Vec<(i64, String, String)>) -> Vec<(i64, OutboxRow)> {
    rows.into_iter()
        .map(|(seq, event_id, event)| (seq, OutboxRow { event_id, event }))
        .collect()
}

/// The delivered rows, to delete.
#[diesel::dsl::auto_type(no_type_alias)]
pub(crate) fn delivered<'a>(seqs: &'a [i64]) -> _ {
    diesel::dsl::delete(audit_outbox::table.filter(audit_outbox::seq.eq_any(seqs)))
}

/// An event as the outbox keeps it: everything the writer needs, the ambient scope resolved.
#[derive(Serialize, Deserialize)]
struct StoredEvent<'a> {
    id: Uuid,
    /// Microseconds since the Unix epoch.
    timestamp: i64,
    action: Cow<'a, str>,
    category: Category,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<Cow<'a, Actor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<Cow<'a, Context>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<Cow<'a, Resource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changes: Option<Cow<'a, Changes>>,
}

/// A captured change, before it becomes an event or an outbox row.
pub(crate) struct Captured {
    pub action: Resolved,
    pub resource: Resource,
    pub changes: Changes,
    pub timestamp: Timestamp,
}

impl Captured {
    /// Hands the change to the audited call running now, to be recorded in that call's event
    /// (see [`AuditScope::offer_change`]); gives it back when no call takes it.
    // Given back by value, as `offer_change` does: no copy and no allocation.
    #[allow(clippy::result_large_err)]
    pub fn offer(self) -> Result<(), Captured> {
        let Captured {
            action,
            resource,
            changes,
            timestamp,
        } = self;
        AuditScope::offer_change(resource, changes).map_err(|(resource, changes)| Captured {
            action,
            resource,
            changes,
            timestamp,
        })
    }

    /// The event handed to the writer right after the commit.
    pub fn into_event(self) -> AuditEvent {
        self.action
            .event()
            .at(self.timestamp)
            .with_resource(self.resource)
            .with_changes(self.changes)
    }

    /// The outbox row, with the ambient scope resolved now (the relay runs elsewhere).
    pub fn to_outbox_row(&self, scope: Option<&AuditScope>) -> OutboxRow {
        let id = event_id(self.timestamp);
        let stored = stored_event(id, &self.action, self.timestamp, scope);
        let stored = StoredEvent {
            resource: Some(Cow::Borrowed(&self.resource)),
            changes: Some(Cow::Borrowed(&self.changes)),
            ..stored
        };
        let event = serde_json::to_string(&stored).expect("events serialize");
        OutboxRow {
            event_id: id.to_string(),
            event,
        }
    }
}

/// A UUIDv7 for an event at `timestamp`.
fn event_id(timestamp: Timestamp) -> Uuid {
    let micros = timestamp.unix_micros().max(0) as u64;
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, micros / 1_000_000, (micros % 1_000_000) as u32 * 1000);
    Uuid::new_v7(ts)
}

/// The stored event without resource and changes.
fn stored_event<'a>(
    id: Uuid,
    action: &'a Resolved,
    timestamp: Timestamp,
    scope: Option<&'a AuditScope>,
) -> StoredEvent<'a> {
    StoredEvent {
        id,
        timestamp: timestamp.unix_micros(),
        action: Cow::Borrowed(action.name()),
        category: action.category(),
        actor: scope.and_then(AuditScope::actor_ref).map(Cow::Borrowed),
        tenant: scope.and_then(AuditScope::tenant_name).map(Cow::Borrowed),
        context: scope
            .map(AuditScope::context_ref)
            .filter(|c| !c.is_empty())
            .map(Cow::Borrowed),
        resource: None,
        changes: None,
    }
}

/// For an outbox row the database completes (see [`crate::plan`]): the event id, and the
/// event's JSON without its resource and changes and without the closing brace, ending in a
/// comma (`{"id":"...",...,`). The database appends `"resource":{...},"changes":{...}}`.
pub(crate) fn outbox_prefix(action: &Resolved, timestamp: Timestamp, scope: Option<&AuditScope>) -> (String, String) {
    let id = event_id(timestamp);
    let mut prefix = serde_json::to_string(&stored_event(id, action, timestamp, scope)).expect("events serialize");
    prefix.pop(); // the closing brace (the event has an id, so it is not empty)
    prefix.push(',');
    (id.to_string(), prefix)
}

/// What the one-statement outboxed update wrote, for the comparison with the model's event.
#[derive(Deserialize)]
pub(crate) struct WrittenEvent {
    pub resource: Resource,
    pub changes: Changes,
}

fn decode(event_id: &str, json: &str) -> Result<(Uuid, AuditEvent), Error> {
    let bad = |message: String| Error::Outbox {
        event_id: event_id.to_owned(),
        message,
    };
    let stored: StoredEvent<'_> =
        serde_json::from_str(json).map_err(|e| bad(format!("not a valid outbox event: {e}")))?;
    let mut event = relayed_event(stored.action.into_owned(), stored.category)
        .with_id(stored.id)
        .at(Timestamp::from_unix_micros(stored.timestamp));
    if let Some(actor) = stored.actor {
        event = event.actor(actor.into_owned());
    }
    if let Some(tenant) = stored.tenant {
        event = event.tenant(tenant.into_owned());
    }
    if let Some(context) = stored.context {
        let c = context.into_owned();
        let standard = [
            ("ip", c.ip),
            ("user_agent", c.user_agent),
            ("request_id", c.request_id),
            ("session_id", c.session_id),
            ("trace_id", c.trace_id),
        ];
        for (key, value) in standard {
            if let Some(value) = value {
                event = event.context(key, value);
            }
        }
        for (key, value) in c.extra {
            event = event.context(&key, value);
        }
    }
    if let Some(resource) = stored.resource {
        event = event.with_resource(resource.into_owned());
    }
    if let Some(changes) = stored.changes {
        event = event.with_changes(changes.into_owned());
    }
    if event_id != stored.id.to_string() {
        return Err(bad(format!(
            "the row's event_id does not match the event's id {}",
            stored.id
        )));
    }
    Ok((stored.id, event))
}

/// The event of a committed change whose action was checked where the change was made (a
/// typed action, or a name the capturing process's vocabulary declared, or recorded anyway
/// under `Warn`). The relay, possibly another binary, delivers it whatever its own vocabulary
/// says: a committed change always gets its event, and a relay that refused one would hold
/// every later event of the outbox behind it. An action this process's vocabulary does not
/// declare is reported loudly, and delivered; a category it disagrees with is corrected.
fn relayed_event(action: String, category: Category) -> AuditEvent {
    let Some(vocabulary) = audit_runtime::installed_vocabulary() else {
        return AuditEvent::new(action, category);
    };
    if let Some(entry) = vocabulary.get(&action) {
        return AuditEvent::new(action, entry.category);
    }
    let message = format!(
        "audit relay: the outbox holds a committed change recorded as `{action}`, which the vocabulary of this \
         binary ({}) does not declare: delivered as recorded",
        vocabulary.source()
    );
    tracing::error!(target: "audit::vocabulary", action = %action, "{message}");
    crate::action::report_once(&format!("relay {action}"), &message);
    AuditEvent::of(audit_runtime::Action::__checked(interned(action), category))
}

/// `name` as a `&'static str`, allocated once per distinct name (a typed action's name is
/// static; the few names a relay delivers without its vocabulary declaring them stay).
fn interned(name: String) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    leaked
}

/// Moves events from the outbox into the audit store, exactly once. See the
/// [module documentation](self) for the protocol.
///
/// Run one relay per outbox table (on PostgreSQL, several relays are safe: each takes other
/// rows). The relay emits into the `tracing` dispatcher current on its thread, so install the
/// [`AuditLayer`](audit_runtime::AuditLayer) whose `guard` is passed to it.
#[derive(Debug)]
pub struct Relay {
    batch: i64,
    /// Whether events may have been emitted without their rows being deleted: true at start
    /// (a previous process may have died there) and after any failure.
    uncertain: bool,
    pause_after_flush: Option<std::time::Duration>,
}

impl Default for Relay {
    fn default() -> Self {
        Relay::new()
    }
}

impl Relay {
    /// A relay that delivers up to 500 events per run.
    pub fn new() -> Self {
        Relay {
            batch: 500,
            uncertain: true,
            pause_after_flush: None,
        }
    }

    /// Most events delivered per [`run_once`](Self::run_once).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch = i64::try_from(events.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// Test hook: sleeps after the events are durable and before their rows are deleted, so
    /// that a crash test can kill the process exactly there.
    #[doc(hidden)]
    pub fn pause_after_flush(mut self, pause: std::time::Duration) -> Self {
        self.pause_after_flush = Some(pause);
        self
    }

    /// Delivers one batch; returns how many rows it took off the outbox (delivered now, or
    /// found already delivered).
    ///
    /// `store` reads the audit store the writer behind `guard` writes to (for a file store,
    /// [`FileSource`](audit_runtime::FileSource) over the same directory); it is read
    /// only after a restart or a failure, to skip events delivered before.
    pub fn run_once<C: AuditConnection>(
        &mut self,
        conn: &mut C,
        guard: &WriterGuard,
        store: &mut dyn RecordSource,
    ) -> Result<usize, Error> {
        match C::DIALECT {
            // Row locks keep concurrent relays apart; they block no application writer.
            Dialect::Postgres => {
                let n = conn.transaction(|conn| self.deliver(conn, guard, store))?;
                self.settle();
                Ok(n)
            }
            // A read transaction would block the application's writers in rollback-journal
            // mode for the whole delivery; one relay per SQLite outbox needs no lock.
            Dialect::Sqlite => self.deliver(conn, guard, store),
        }
    }

    /// Runs [`run_once`](Self::run_once) until the outbox is empty; returns the total.
    pub fn drain<C: AuditConnection>(
        &mut self,
        conn: &mut C,
        guard: &WriterGuard,
        store: &mut dyn RecordSource,
    ) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let n = self.run_once(conn, guard, store)?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    fn deliver<C: AuditConnection>(
        &mut self,
        conn: &mut C,
        guard: &WriterGuard,
        store: &mut dyn RecordSource,
    ) -> Result<usize, Error> {
        let rows = conn.outbox_fetch(self.batch)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let seqs = self.emit(&rows, guard, store)?;
        conn.outbox_delete(&seqs)?;
        // Still uncertain until the deletion commits (PostgreSQL commits after this returns).
        if C::DIALECT == Dialect::Sqlite {
            self.settle();
        }
        Ok(seqs.len())
    }

    /// Hands the events of `rows` to the writer, skipping those the store holds already, and
    /// waits until they are durable; returns the rows' `seq`s, to delete. The same for the sync
    /// and the async connections: only fetching and deleting the rows differ.
    pub(crate) fn emit(
        &mut self,
        rows: &[(i64, OutboxRow)],
        guard: &WriterGuard,
        store: &mut dyn RecordSource,
    ) -> Result<Vec<i64>, Error> {
        let mut events = Vec::with_capacity(rows.len());
        for (_, row) in rows {
            events.push(decode(&row.event_id, &row.event)?);
        }
        let delivered = if self.uncertain {
            // Everything emitted before must be durable before the store is asked, or an
            // event still in the writer's queue would be missed and delivered twice.
            guard.flush()?;
            delivered_ids(store, &events)?
        } else {
            HashSet::new()
        };
        self.uncertain = true;
        for (id, event) in events {
            if !delivered.contains(&id) {
                event.emit_with(FailureMode::Refuse)?;
            }
        }
        guard.flush()?;
        if let Some(pause) = self.pause_after_flush {
            println!("relay flushed");
            std::thread::sleep(pause);
        }
        Ok(rows.iter().map(|(seq, _)| *seq).collect())
    }

    /// The most rows one run takes.
    #[cfg(feature = "async")]
    pub(crate) fn batch(&self) -> i64 {
        self.batch
    }

    /// Marks the last delivery as complete (its deletion committed).
    pub(crate) fn settle(&mut self) {
        self.uncertain = false;
    }
}

/// The ids among `events` that the store already holds. Stored timestamps are never before
/// the event's own (the writer only moves them forward), so reading from the oldest is enough.
fn delivered_ids(store: &mut dyn RecordSource, events: &[(Uuid, AuditEvent)]) -> Result<HashSet<Uuid>, Error> {
    let wanted: HashSet<Uuid> = events.iter().map(|(id, _)| *id).collect();
    let Some(oldest) = events.iter().map(|(_, e)| e.timestamp()).min() else {
        return Ok(HashSet::new());
    };
    let mut found = HashSet::new();
    for record in store.query(&Query::new().from(oldest))? {
        let record = record?;
        let indexed = Indexed::from_line(&record.line).map_err(|e| Error::Outbox {
            event_id: String::new(),
            message: format!(
                "unreadable record in the audit store ({} seq {}): {e}",
                record.chain, record.seq
            ),
        })?;
        if wanted.contains(&indexed.id) {
            found.insert(indexed.id);
        }
    }
    Ok(found)
}
