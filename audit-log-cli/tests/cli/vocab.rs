//! `audit vocab`: the catalogue of `audit.toml` in Markdown, CSV and JSON, found upwards from
//! the current directory or named by `--file`, and errors that name the file and line.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

const VOCABULARY: &str = r#"include_standard = true

[actions."billing.update"]
category = "mutation"
description = "A customer's billing details changed"

[actions."billing.legacy_update"]
category = "mutation"
description = "Old | name"
deprecated = "the v1 API is going away"
replaced_by = "billing.update"

[actions."report.export"]
category = "data_access"
description = "=SUM(A1:A9) looks like a formula"
"#;

/// A project with `audit.toml` at its root and a nested directory to run from.
fn project() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("audit.toml"), VOCABULARY).unwrap();
    let nested = dir.path().join("crates/app/src");
    std::fs::create_dir_all(&nested).unwrap();
    (dir, nested)
}

#[test]
fn markdown_is_the_default_and_the_file_is_found_upwards() {
    let (dir, nested) = project();
    let out = audit_in(&nested, ["vocab"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    let standard = audit::vocab::STANDARD_ACTIONS.len();
    assert!(text.starts_with("# Audit action catalogue\n"), "{text}");
    assert!(
        text.contains(&format!("Source: `{}`", dir.path().join("audit.toml").display())),
        "{text}"
    );
    assert!(text.contains(&format!("{} actions.", standard + 3)), "{text}");
    assert!(text.contains("## Mutation (`mutation`)"), "{text}");
    assert!(
        text.contains("| `billing.update` | A customer's billing details changed |  |"),
        "{text}"
    );
    assert!(
        text.contains(
            "| `billing.legacy_update` | Old \\| name | deprecated: use `billing.update` (the v1 API is going away) |"
        ),
        "{text}"
    );
    assert!(text.contains("| `user.login` |"), "standard actions are listed: {text}");

    let explicit = audit_in(&nested, ["vocab", "--format", "markdown"]);
    assert_eq!(explicit.stdout, out.stdout);
}

#[test]
fn csv_has_one_row_per_action_with_formulas_neutralised() {
    let (_dir, nested) = project();
    let out = audit_in(&nested, ["vocab", "--format", "csv"]);
    assert_exit(&out, 0);
    let mut reader = csv::Reader::from_reader(&out.stdout[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "action",
            "category",
            "description",
            "deprecated",
            "replaced_by",
            "standard"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), audit::vocab::STANDARD_ACTIONS.len() + 3);
    let row = |name: &str| rows.iter().find(|r| &r[0] == name).unwrap().clone();
    let legacy = row("billing.legacy_update");
    assert_eq!(&legacy[1], "mutation");
    assert_eq!(&legacy[3], "the v1 API is going away");
    assert_eq!(&legacy[4], "billing.update");
    assert_eq!(&legacy[5], "false");
    assert_eq!(&row("report.export")[2], "'=SUM(A1:A9) looks like a formula");
    assert_eq!(&row("user.login")[5], "true");
}

#[test]
fn json_lists_every_action_and_file_names_the_vocabulary() {
    let (dir, _nested) = project();
    // Run somewhere without an audit.toml above: --file decides.
    let elsewhere = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.toml");
    let out = audit_in(
        elsewhere.path(),
        [
            Path::new("vocab"),
            Path::new("--format"),
            Path::new("json"),
            Path::new("--file"),
            &file,
        ],
    );
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["include_standard"], true);
    assert_eq!(doc["source"], file.to_str().unwrap());
    let actions = doc["actions"].as_array().unwrap();
    assert_eq!(actions.len(), audit::vocab::STANDARD_ACTIONS.len() + 3);
    let legacy = actions.iter().find(|a| a["name"] == "billing.legacy_update").unwrap();
    assert_eq!(legacy["category"], "mutation");
    assert_eq!(legacy["deprecated"]["replaced_by"], "billing.update");
    assert_eq!(legacy["standard"], false);
}

#[test]
fn a_malformed_vocabulary_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.toml");
    std::fs::write(
        &file,
        "[actions.\"billing.update\"]\ncategory = \"mutation\"\ndescription = \"ok\"\n\n\
         [actions.\"billing.refund\"]\ncategory = \"mutations\"\ndescription = \"typo in the category\"\n",
    )
    .unwrap();
    let out = audit_in(dir.path(), ["vocab"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:6:", file.display())), "{err}");
    assert!(err.contains("mutations"), "{err}");
    assert!(out.stdout.is_empty());

    // A syntax error too.
    std::fs::write(&file, "include_standard = true\n[actions.\"x.y\"\ncategory = 1\n").unwrap();
    let out = audit_in(dir.path(), ["vocab", "--format", "json"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(&format!("{}:2:", file.display())),
        "{}",
        stderr(&out)
    );

    // No file at all: the directories searched are named.
    let empty = tempfile::tempdir().unwrap();
    let missing = empty.path().join("nope.toml");
    let out = audit([Path::new("vocab"), Path::new("--file"), &missing]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(&missing.display().to_string()),
        "{}",
        stderr(&out)
    );
    let out = audit_in(empty.path(), ["vocab", "--format", "yaml"]);
    assert_exit(&out, 2);
}
