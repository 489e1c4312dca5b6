//! What a user reads when an audited operation would be recorded under a default action the
//! vocabulary lacks (a post-monomorphization error: reported by `cargo build` and `cargo test`,
//! not by `cargo check`), and that naming an action fixes it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/missing_delete_action.rs");
    t.compile_fail("tests/ui/missing_update_action_async.rs");
    // A pass case makes trybuild build (not only check), which the error above needs.
    t.pass("tests/ui/explicit_delete_action.rs");
}
