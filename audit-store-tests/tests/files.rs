//! The shared store suite on the file store.

audit_store_tests::store_suite!(audit_store_tests::FileHarness);
