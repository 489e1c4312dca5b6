//! The walls of DESIGN.md, checked against the code: a wall that is only written down erodes
//! one convenient import at a time.

use std::path::Path;
use std::process::Command;

/// Each workspace package with its normal (non-dev, non-build) dependencies.
fn normal_dependencies() -> Vec<(String, Vec<String>)> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().expect("name").to_owned())
                .collect();
            (p["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

fn deps_of<'a>(all: &'a [(String, Vec<String>)], package: &str) -> &'a [String] {
    &all.iter()
        .find(|(name, _)| name == package)
        .unwrap_or_else(|| panic!("package {package}"))
        .1
}

fn assert_none(all: &[(String, Vec<String>)], package: &str, forbidden: &[&str], wall: &str) {
    let bad: Vec<&String> = deps_of(all, package)
        .iter()
        .filter(|d| forbidden.contains(&d.as_str()))
        .collect();
    assert!(bad.is_empty(), "{package} depends on {bad:?}: {wall}");
}

#[test]
fn no_package_is_named_like_an_unrelated_crates_io_crate() {
    let all = normal_dependencies();
    for taken in ["audit", "audit-cli"] {
        assert!(
            all.iter().all(|(name, _)| name != taken),
            "`{taken}` belongs to an unrelated crate on crates.io"
        );
    }
}

#[test]
fn crates_keep_to_their_side_of_the_walls() {
    let all = normal_dependencies();
    let workspace: Vec<&str> = all.iter().map(|(name, _)| name.as_str()).collect();
    let others: Vec<&str> = workspace.iter().copied().filter(|n| *n != "audit-chain").collect();
    assert_none(
        &all,
        "audit-chain",
        &others,
        "the contract crate depends on no other workspace crate",
    );
    assert_none(
        &all,
        "audit-chain",
        &["tracing", "tracing-subscriber"],
        "the contract crate does without tracing",
    );
    assert_none(
        &all,
        "audit-runtime",
        &[
            "diesel",
            "audit-diesel",
            "axum",
            "tower",
            "hyper",
            "http",
            "async-nats",
            "audit-sqlite",
            "audit-postgres",
            "rusqlite",
            "postgres",
        ],
        "the runtime never depends on diesel, HTTP, NATS or a database: integrations build on it",
    );
    for store in ["audit-sqlite", "audit-postgres"] {
        assert_none(
            &all,
            store,
            &["audit-macros", "tracing-subscriber"],
            "stores know records and chains, never the tracing layer or the macros",
        );
    }
    assert_none(
        &all,
        "audit-log-cli",
        &["audit-sqlite", "audit-postgres", "rusqlite", "postgres"],
        "the CLI reaches stores only through the store interfaces",
    );
}

/// The `use crate::...` paths of every file under `dir` (or the file itself).
fn crate_paths(path: &Path, out: &mut Vec<(String, String)>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            crate_paths(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        let text = std::fs::read_to_string(path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains("crate::") {
                out.push((format!("{}:{}", path.display(), i + 1), line.trim().to_owned()));
            }
        }
    }
}

#[test]
fn the_read_side_and_the_stores_never_reach_into_the_writer_or_the_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("audit-runtime/src");
    let mut lines = Vec::new();
    for part in ["query", "export.rs", "copy.rs", "retention.rs", "verify.rs", "store"] {
        crate_paths(&src.join(part), &mut lines);
    }
    assert!(lines.len() > 20, "the sources were read: {}", lines.len());
    let bad: Vec<String> = lines
        .iter()
        .filter(|(_, line)| {
            ["crate::writer", "crate::layer", "crate::emit", "crate::scope"]
                .iter()
                .any(|m| line.contains(m))
        })
        .map(|(place, line)| format!("{place}: {line}"))
        .collect();
    assert!(
        bad.is_empty(),
        "the read side and the stores do not depend on the writer:\n{}",
        bad.join("\n")
    );

    // Only the file store knows its own layout.
    let mut lines = Vec::new();
    for part in ["query", "export.rs", "copy.rs", "retention.rs", "verify.rs", "writer"] {
        crate_paths(&src.join(part), &mut lines);
    }
    let layout = [
        "encode_chain",
        "store_files",
        "segments(",
        "chain_names",
        "is_store_dir",
        "read_seal_files",
    ];
    let bad: Vec<String> = lines
        .iter()
        .filter(|(_, line)| line.contains("store::file") && layout.iter().any(|m| line.contains(m)))
        .map(|(place, line)| format!("{place}: {line}"))
        .collect();
    assert!(
        bad.is_empty(),
        "the file store's layout is its own:\n{}",
        bad.join("\n")
    );
}
