//! One query API over every store: filter by tenant, time range, action (exact or a prefix
//! such as `billing.*`), actor, resource and outcome; newest or oldest first; cursor
//! pagination; records streamed with their exact stored bytes.
//!
//! A store that can be read implements [`RecordSource`]. [`FileSource`](crate::FileSource)
//! reads a file store directory; the SQLite and PostgreSQL crates implement the trait for
//! their stores. Verify, export and copy are written once against the trait
//! ([`verify_source`], [`export_source`], [`copy`](crate::copy::copy)).
//!
//! ```
//! use audit_runtime::query::{Order, Query, RecordSource};
//! use audit_runtime::{AuditEvent, Category, FileSource, FileStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut store = FileStore::open(dir.path())?;
//! let events = (0..5).map(|i| {
//!     AuditEvent::new("billing.update", Category::Mutation).tenant("acme").resource("invoice", i)
//! });
//! audit_runtime::store::append_events(&mut store, events)?;
//!
//! let mut source = FileSource::open(dir.path())?;
//! let query = Query::new().tenant("acme").action("billing.*").order(Order::NewestFirst).limit(2);
//! let page = audit_runtime::query::page(&mut source, &query)?;
//! assert_eq!(page.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 4]);
//! let rest: Vec<_> = source.query(&query.clone().after(page.next.unwrap()).limit(10))?.collect::<Result<_, _>>()?;
//! assert_eq!(rest.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 2, 1]);
//! # Ok(()) }
//! ```

mod cursor;
mod filter;
mod indexed;
mod merge;
mod paged;
mod source;

pub use audit_chain::{StoredRecord, StoredSeal};
pub use cursor::Cursor;
pub use filter::{Order, OutcomeStatus, Query};
pub use indexed::Indexed;
pub(crate) use merge::Merge;
pub use paged::Paged;
pub use source::{Page, RecordSource, Records, export_source, page, verify_source};
