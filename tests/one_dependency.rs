//! An application crate outside the workspace, depending on the facade alone (with
//! features), uses the file, SQLite and PostgreSQL stores opened from location strings, an
//! `#[audited]` fn and the diesel integration on both databases
//! (`tests/fixtures/one-dependency`). This test builds it with cargo, as a user would, and
//! runs it against real files and the test PostgreSQL server.

use std::path::Path;
use std::process::Command;

fn database_url() -> String {
    std::env::var("AUDIT_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A superuser connection, or `None` with a loud note; under `CI=true` an unreachable server
/// fails the test.
fn admin(url: &str) -> Option<postgres::Client> {
    match postgres::Client::connect(url, postgres::NoTls) {
        Ok(client) => Some(client),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL is unreachable at {url} and CI=true: {e}")
        }
        Err(e) => {
            eprintln!("\n*** PostgreSQL is unreachable at {url} ({e}): its part of the fixture is skipped.\n");
            None
        }
    }
}

#[test]
fn an_application_depending_on_the_facade_alone_uses_every_store_and_diesel() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("tests/fixtures/one-dependency");
    let manifest: String = std::fs::read_to_string(fixture.join("Cargo.toml")).unwrap();
    let toolkit_deps: Vec<&str> = manifest
        .lines()
        .filter(|l| l.contains("path = ") || l.trim_start().starts_with("audit"))
        .collect();
    assert_eq!(
        toolkit_deps,
        [r#"audit = { package = "audit-log", path = "../../..", features = ["full"] }"#],
        "the fixture depends on the facade and on no other crate of the toolkit"
    );

    let dir = tempfile::tempdir().unwrap();
    let url = database_url();
    let mut pg = admin(&url);
    let schema = format!("fixture_{}", std::process::id());
    let mut args = vec![dir.path().display().to_string()];
    if pg.is_some() {
        args.push(format!("{url}?schema={schema}"));
    }
    // A copy outside the workspace, as an application would be, resolved against the
    // workspace's lock file offline (the same versions, nothing fetched), built in the
    // workspace's own target directory (most dependencies are built already).
    let app = tempfile::tempdir().unwrap();
    for file in ["Cargo.toml", "audit.toml", "src/main.rs"] {
        let to = app.path().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let text = std::fs::read_to_string(fixture.join(file)).unwrap();
        std::fs::write(
            to,
            text.replace(
                "path = \"../../..\"",
                &format!("path = {:?}", root.display().to_string()),
            ),
        )
        .unwrap();
    }
    std::fs::copy(root.join("Cargo.lock"), app.path().join("Cargo.lock")).unwrap();
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| root.join("target").display().to_string());
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg(app.path().join("Cargo.toml"))
        .arg("--")
        .args(&args)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run cargo");
    if let Some(client) = &mut pg {
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .unwrap();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the fixture failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("/log: 2 records verified"), "{stdout}");
    assert!(stdout.contains("audit.db: 1 records verified"), "{stdout}");
    if pg.is_some() {
        assert!(
            stdout.contains(&format!("?schema={schema}: 2 records verified")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("one dependency: ok"), "{stdout}");
}
