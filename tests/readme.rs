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
