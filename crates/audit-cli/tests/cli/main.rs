//! End-to-end tests of the `audit` binary on stores written by the real runtime: every kind of
//! tampering, exports of each format, and the standalone Python verifier.

mod common;
mod export;
mod script;
mod verify;
