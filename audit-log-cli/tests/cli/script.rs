//! `scripts/verify_chain.py`, the README's standalone verifier, agrees with `audit verify`.

use std::path::Path;

use crate::common::*;

#[test]
fn the_python_script_verifies_exports_and_names_tampering() {
    let store = build_store();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.jsonl");
    let run = audit([
        Path::new("export"),
        store.path(),
        Path::new("--format"),
        Path::new("jsonl"),
        Path::new("-o"),
        &file,
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));

    let good = python_verify(&file);
    let text = stdout(&good);
    assert!(good.status.success(), "{text}{}", stderr(&good));
    let acme = read_lines(&segment(store.path(), "acme"));
    assert!(
        text.contains(&format!("acme: 20 records through seq 20, head {}", hash_of(&acme[19]))),
        "{text}"
    );
    assert!(text.contains("globex: 8 records through seq 8, head "), "{text}");

    // A time-range export starts mid-chain and still verifies.
    let from = acme_time(5).to_string();
    let range = dir.path().join("range.jsonl");
    let run = audit([
        "export".as_ref(),
        store.path().as_os_str(),
        "--from".as_ref(),
        from.as_ref(),
        "--tenant".as_ref(),
        "acme".as_ref(),
        "--format".as_ref(),
        "jsonl".as_ref(),
        "-o".as_ref(),
        range.as_os_str(),
    ]);
    assert_eq!(run.status.code(), Some(0));
    let segment_run = python_verify(&range);
    assert!(
        stdout(&segment_run).contains("acme: 16 records through seq 20"),
        "{}",
        stdout(&segment_run)
    );

    let lines = read_lines(&file);
    let tampered = dir.path().join("tampered.jsonl");
    let cases: [(&str, Vec<String>, &str); 3] = [
        (
            "edited",
            edit(&lines, 6, "cust_7", "cust_8"),
            "chain acme seq 7 (line 7): edited",
        ),
        (
            "deleted",
            [&lines[..6], &lines[7..]].concat(),
            "chain acme seq 8 (line 7): expected seq 7",
        ),
        (
            "relinked",
            relinked_after_delete(&lines),
            "chain acme seq 7 (line 7): prev_hash",
        ),
    ];
    for (what, lines, expected) in cases {
        write_lines(&tampered, &lines);
        let bad = python_verify(&tampered);
        assert_eq!(bad.status.code(), Some(1), "{what}: {}", stdout(&bad));
        assert!(stderr(&bad).contains(expected), "{what}: {}", stderr(&bad));
        let ours = audit([Path::new("verify"), &tampered]);
        assert_eq!(ours.status.code(), Some(1), "{what}: audit verify agrees");
    }
}

fn edit(lines: &[String], index: usize, from: &str, to: &str) -> Vec<String> {
    let mut lines = lines.to_vec();
    lines[index] = lines[index].replace(from, to);
    lines
}

/// Deletes seq 7 and renumbers nothing, but fixes the hash of seq 8 after changing its seq to
/// 7: a clumsy forger that keeps seq continuous but cannot fix the link.
fn relinked_after_delete(lines: &[String]) -> Vec<String> {
    let mut lines = lines.to_vec();
    lines.remove(6);
    lines[6] = rehash(&lines[6].replace(r#""seq":8,"#, r#""seq":7,"#));
    lines
}
