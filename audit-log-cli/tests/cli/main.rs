//! End-to-end tests of the `audit` binary on stores written by the real runtime (files,
//! SQLite, PostgreSQL): every kind of tampering, exports of each format, the standalone
//! Python verifier, copies between stores, retention and the vocabulary catalogue.

mod common;
mod copy;
mod export;
mod pg;
mod retention;
mod script;
mod stores;
mod verify;
mod vocab;
