//! The contract of the audit log, and nothing else: the record line's framing (Contract 1),
//! the chain rule (Contract 2), seals, and the verifier of line streams.
//!
//! This is the crate an outside verifier, a browser build or another language's port takes:
//! it depends on no other crate of the toolkit, on no `tracing`, store or database crate. The
//! stores, the writer and the `audit` command build on it; it never builds on them.
//!
//! - A record is one JSON object on one line; `hash` is its last member and is the lowercase
//!   hex SHA-256 of the line with `,"hash":"<hex>"` removed ([`LineView`], [`append_line`]).
//! - `prev_hash` is the previous record's `hash` in the same chain (64 zeros for the first)
//!   and `seq` goes up by exactly one ([`Verifier`], [`check_continues`]).
//! - Seals record a chain's head apart from its records, so that deleting the newest records
//!   is detected too ([`Seal`]).
//!
//! ```
//! use audit_chain::{ChainHead, DamageKind, Location, Timestamp, Verifier, append_line};
//!
//! // Two records of chain `acme`, framed and hashed as the writer does.
//! let mut head = ChainHead::genesis("acme");
//! let mut log = Vec::new();
//! let members = br#""actor":{"type":"user","id":"usr_1","auth":"sso"},"action":"user.login","category":"authentication","outcome":{"status":"success"},"tenant":"acme""#;
//! for id in ["01938a5e-0000-7000-8000-000000000001", "01938a5e-0000-7000-8000-000000000002"] {
//!     append_line(&mut log, id, br#""acme""#, members, Timestamp::now(), &mut head);
//! }
//!
//! let verify = |log: &[u8]| {
//!     let mut verifier = Verifier::new();
//!     for (n, line) in log.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
//!         verifier.push(line, || Location { path: "acme.jsonl".into(), line: n as u64 + 1 }, true);
//!     }
//!     verifier.finish()
//! };
//! let report = verify(&log);
//! assert!(report.is_ok());
//! assert_eq!((report.chains[0].count, report.chains[0].head), (2, head.hash));
//!
//! // Any edit breaks the hash of the record it touches.
//! let tampered = String::from_utf8(log).unwrap().replacen("usr_1", "usr_2", 1);
//! let damage = verify(tampered.as_bytes()).chains[0].damage.clone().unwrap();
//! assert_eq!((damage.kind, damage.seq), (DamageKind::Edited, Some(1)));
//! ```

mod chain;
mod hash;
mod line;
pub mod read;
mod record;
mod seal;
mod time;
pub mod verify;

pub use chain::{ChainHead, DEFAULT_CHAIN, append_line, check_continues};
pub use hash::ChainHash;
pub use line::{HASH_SUFFIX_LEN, LineView, Malformed, SCHEMA_VERSION};
pub use record::StoredRecord;
pub use seal::{Seal, StoredSeal};
pub use time::{TIMESTAMP_LEN, Timestamp};
pub use verify::{ChainReport, Damage, DamageKind, Location, RecordCheck, Verifier, VerifyReport};
