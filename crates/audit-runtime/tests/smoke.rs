use audit_runtime::*;
use tracing_subscriber::prelude::*;

#[test]
fn end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path()).unwrap()).build().unwrap();
    let sub = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(sub, || {
        let scope = AuditScope::new().actor(Actor::user("usr_1", AuthMethod::Password)).tenant("acme");
        scope.in_scope(|| {
            for i in 0..10 {
                AuditEvent::new("user.login", Category::Authentication).resource("user", i).emit().unwrap();
            }
        });
        AuditEvent::new("system.start", Category::Admin).emit().unwrap();
    });
    guard.flush().unwrap();
    drop(guard);
    for e in walk(dir.path()) { println!("{}", e.display()); }
    let text = std::fs::read_to_string(dir.path().join("chains/acme/00000000000000000001.jsonl")).unwrap();
    println!("{}", text.lines().next().unwrap());
    let report = verify::verify_paths(&[dir.path()], &Default::default()).unwrap();
    println!("{report:#?}");
    assert!(report.is_ok());
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = vec![];
    for e in std::fs::read_dir(p).unwrap() { let e = e.unwrap().path(); if e.is_dir() { v.extend(walk(&e)); } else { v.push(e); } }
    v
}
