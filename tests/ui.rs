//! Compile-time behaviour of `#[audited]` and `#[derive(AuditModel)]`: every `tests/ui/fail`
//! case must fail with exactly the messages in its `.stderr`, every `tests/ui/pass` case must
//! compile and run. Regenerate the `.stderr` files with `TRYBUILD=overwrite`, then read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
