//! The contract crate stands alone: its normal dependency tree holds no other crate of the
//! workspace, no `tracing` and no store or database crate, so outside verifiers, a browser
//! build or another language's port can take it as it is.

use std::process::Command;

fn cargo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo prints UTF-8")
}

#[test]
fn contract_crate_depends_on_no_workspace_crate_tracing_or_store() {
    let metadata: serde_json::Value =
        serde_json::from_str(&cargo(&["metadata", "--no-deps", "--format-version", "1"])).expect("metadata is JSON");
    let members: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .filter(|name| name != env!("CARGO_PKG_NAME"))
        .collect();
    assert!(members.len() >= 5, "the workspace's other packages: {members:?}");

    let tree = cargo(&[
        "tree",
        "-p",
        env!("CARGO_PKG_NAME"),
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    let packages: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(packages.contains(&"sha2"), "the tree was read: {packages:?}");
    let forbidden = |name: &str| {
        members.iter().any(|m| m == name)
            || name.starts_with("tracing")
            || [
                "diesel",
                "rusqlite",
                "libsqlite3-sys",
                "postgres",
                "tokio-postgres",
                "sqlx",
                "async-nats",
                "tokio",
            ]
            .contains(&name)
    };
    let bad: Vec<&str> = packages.into_iter().filter(|name| forbidden(name)).collect();
    assert!(
        bad.is_empty(),
        "the contract crate must stand alone, but its dependency tree holds {bad:?}"
    );
}
