//! Actions given as strings are checked at run time against the vocabulary compiled into the
//! binary; typed actions (`audit::action!`) at compile time.

use audit::{AuditError, AuditEvent, AuditLayer, Category, FailureMode, FileStore, Record};
use tracing_subscriber::prelude::*;

#[test]
fn string_actions_are_checked_against_the_compiled_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = AuditLayer::builder(FileStore::open(dir.path()).unwrap())
        .vocabulary(audit::vocabulary!())
        .build()
        .unwrap();
    let unknown_before = audit::unknown_action_count();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        // A typo is refused under Refuse, with the suggestion...
        match AuditEvent::new("acess.denied", Category::Authorization).emit_with(FailureMode::Refuse) {
            Err(AuditError::UnknownAction { action, message }) => {
                assert_eq!(action, "acess.denied");
                assert!(message.contains("did you mean `access.denied`"), "{message}");
            }
            other => panic!("a typo must not be recorded silently: {other:?}"),
        }
        // ...and recorded, loudly, under Warn.
        AuditEvent::new("biling.update", Category::Mutation)
            .emit_with(FailureMode::Warn)
            .unwrap();
        // A category the vocabulary disagrees with is corrected.
        AuditEvent::new("user.login", Category::Mutation)
            .emit_with(FailureMode::Refuse)
            .unwrap();
        // Typed: checked at compile time, its category from the vocabulary.
        AuditEvent::of(audit::action!("role.grant"))
            .emit_with(FailureMode::Refuse)
            .unwrap();
    });
    assert_eq!(audit::unknown_action_count() - unknown_before, 2);
    guard.shutdown().unwrap();
    let path = dir.path().join("chains/default/00000000000000000001.jsonl");
    let records: Vec<Record> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| Record::parse(l.as_bytes()).unwrap())
        .collect();
    let seen: Vec<(String, Category)> = records.into_iter().map(|r| (r.action, r.category)).collect();
    assert_eq!(
        seen,
        [
            ("biling.update".to_owned(), Category::Mutation),
            ("user.login".to_owned(), Category::Authentication),
            ("role.grant".to_owned(), Category::Authorization),
        ]
    );
}
