//! The shared store suite on PostgreSQL (a fresh schema per test).

mod common;

audit_store_tests::store_suite!(common::PgHarness);
