//! The README shows the independent verification script verbatim: the copy the tests run.

#[test]
fn readme_shows_the_tested_verification_script() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let script = std::fs::read_to_string(format!("{root}/scripts/verify_chain.py")).unwrap();
    let start = readme
        .find("<!-- verify_chain.py begin -->\n```python\n")
        .expect("script block in README")
        + 41;
    let end = readme
        .find("```\n<!-- verify_chain.py end -->")
        .expect("end of script block");
    assert_eq!(&readme[start..end], script, "README and scripts/verify_chain.py differ");
    assert!(
        script.lines().count() <= 30,
        "the script stays short enough to read in one go"
    );
}

/// The quickstart writes `./audit-log`, and the README then runs `cargo run -p audit-log-cli`
/// in the same directory: a member glob such as `audit-*` would take the log directory for a
/// package and break that command.
#[test]
fn the_quickstart_log_directory_is_not_taken_for_a_workspace_member() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("a members list");
    assert!(members.contains("\"audit-runtime\""), "{members}");
    assert!(!members.contains('*'), "list workspace members one by one: {members}");
}
