//! `audit verify` on an intact store and on copies with one kind of tampering each.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// Verifies `store` (as JSON and as text) and checks that `chain` is reported damaged with
/// `kind` at `seq`, found at `file:line`; returns the JSON report.
fn assert_damage(store: &Path, chain_name: &str, kind: &str, seq: u64, file: &Path, line: u64) -> Value {
    let (code, report) = verify_json(&[store]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["ok"], false);
    let damage = &chain(&report, chain_name)["damage"];
    assert_eq!(damage["kind"], kind, "{report:#}");
    assert_eq!(damage["chain"], chain_name);
    assert_eq!(damage["seq"], seq, "{report:#}");
    assert_eq!(damage["location"]["path"], file.to_str().unwrap(), "{report:#}");
    assert_eq!(damage["location"]["line"], line, "{report:#}");

    let out = audit([Path::new("verify"), store]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains(&format!("DAMAGE [{kind}]")), "{text}");
    assert!(
        text.contains(&format!(
            "in chain `{chain_name}` at seq {seq}, {}:{line}",
            file.display()
        )),
        "{text}"
    );
    assert!(text.contains("\nFAILED: "), "{text}");
    report
}

/// The other chain of a tampered store is still reported whole.
fn assert_intact(report: &Value, chain_name: &str, count: u64) {
    let c = chain(report, chain_name);
    assert!(c["damage"].is_null(), "{report:#}");
    assert_eq!(c["count"], count);
}

#[test]
fn an_intact_store_verifies_with_counts_and_heads() {
    let store = build_store();
    let out = audit([Path::new("verify"), store.path()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let acme = read_lines(&segment(store.path(), "acme"));
    let globex = read_lines(&segment(store.path(), "globex"));
    assert!(
        text.contains(&format!(
            "chain `acme`: 20 records, seq 1..=20, head {}, sealed through seq 20",
            hash_of(&acme[19])
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "chain `globex`: 8 records, seq 1..=8, head {}",
            hash_of(&globex[7])
        )),
        "{text}"
    );
    assert!(!text.contains("mid-chain"), "{text}");
    assert!(text.contains("OK: 28 records in 2 chains verified"), "{text}");
    assert!(
        stderr(&out).is_empty(),
        "no progress bar when stderr is not a terminal: {}",
        stderr(&out)
    );

    let (code, report) = verify_json(&[store.path()]);
    assert_eq!(code, 0);
    assert_eq!(report["ok"], true);
    assert_eq!(chain(&report, "acme")["head"], hash_of(&acme[19]));
    assert_eq!(chain(&report, "acme")["sealed_through"], ACME);

    let strict = audit([
        Path::new("verify"),
        Path::new("--strict"),
        Path::new("--require-genesis"),
        store.path(),
    ]);
    assert_eq!(strict.status.code(), Some(0), "{}", stdout(&strict));
}

#[test]
fn an_edited_byte_is_reported_at_its_seq() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "acme");
    let mut lines = read_lines(&file);
    lines[6] = lines[6].replace("cust_7", "cust_8");
    write_lines(&file, &lines);
    let report = assert_damage(copy.path(), "acme", "edited", 7, &file, 7);
    assert_intact(&report, "globex", GLOBEX);
    assert_eq!(
        chain(&report, "acme")["count"],
        6,
        "the records before the damage were checked"
    );
}

#[test]
fn a_deleted_middle_line_is_reported_missing() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "acme");
    let mut lines = read_lines(&file);
    lines.remove(6);
    write_lines(&file, &lines);
    assert_damage(copy.path(), "acme", "missing", 7, &file, 7);
}

#[test]
fn swapped_lines_are_reported_reordered() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "acme");
    let mut lines = read_lines(&file);
    lines.swap(6, 7);
    write_lines(&file, &lines);
    let report = assert_damage(copy.path(), "acme", "reordered", 7, &file, 7);
    let detail = chain(&report, "acme")["damage"]["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains(":8"), "names where seq 7 turned up: {detail}");
}

#[test]
fn an_inserted_record_with_a_valid_hash_is_reported_forged() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "acme");
    let mut lines = read_lines(&file);
    // A forger's record for seq 8, linked to seq 7 and hashed correctly, placed before the
    // genuine seq 8: only the second claim on seq 8 gives it away.
    let forged = rehash(&lines[7].replace("cust_8", "cust_666"));
    assert_eq!(prev_hash_of(&forged), hash_of(&lines[6]));
    lines.insert(7, forged);
    write_lines(&file, &lines);
    assert_damage(copy.path(), "acme", "forged", 8, &file, 9);
}

#[test]
fn a_duplicated_line_is_reported_forged() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "acme");
    let mut lines = read_lines(&file);
    lines.insert(7, lines[6].clone());
    write_lines(&file, &lines);
    assert_damage(copy.path(), "acme", "forged", 7, &file, 8);

    // A copy of an older record appended later is an insertion too, not a reorder.
    let mut lines = read_lines(&segment(store.path(), "acme"));
    lines.push(lines[2].clone());
    write_lines(&file, &lines);
    assert_damage(copy.path(), "acme", "forged", 3, &file, 21);
}

/// Rewriting a record and every later one, with hashes and links recomputed, leaves a
/// consistent chain: only a seal tells. It is reported at the first sealed seq that differs.
#[test]
fn a_rewritten_tail_is_caught_by_the_seals() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "acme");
    let mut lines = read_lines(&file);
    lines[13] = lines[13].replace("cust_14", "cust_41");
    for i in 13..lines.len() {
        let prev = hash_of(&lines[i - 1]);
        lines[i] = relink(&lines[i], &prev);
    }
    write_lines(&file, &lines);
    let report = assert_damage(copy.path(), "acme", "forged", ACME, &file, ACME);
    let acme = chain(&report, "acme");
    assert_eq!(
        acme["sealed_through"], ACME_MID_SEAL,
        "the seal of seq 10 still matched"
    );
    let detail = acme["damage"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("seal") && detail.contains("somewhere in seq 11..=20"),
        "{detail}"
    );

    // Without the seals the rewrite is undetectable; with them passed by --seals it is not.
    let seals = tempfile::tempdir().unwrap();
    let moved = seals.path().join("acme.jsonl");
    std::fs::rename(copy.path().join("seals/acme.jsonl"), &moved).unwrap();
    let (code, _) = verify_json(&[copy.path()]);
    assert_eq!(code, 0);
    let out = audit([Path::new("verify"), copy.path(), Path::new("--seals"), &moved]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("DAMAGE [forged]: inserted or forged record in chain `acme` at seq 20"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn deleting_the_newest_lines_is_reported_truncated() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "acme");
    let mut lines = read_lines(&file);
    lines.truncate(17);
    write_lines(&file, &lines);
    // The evidence is the seal of seq 20: its file and line are named.
    let seals = copy.path().join("seals/acme.jsonl");
    let seal_line = read_lines(&seals)
        .iter()
        .position(|l| l.contains(r#""seq":20"#))
        .unwrap() as u64
        + 1;
    let report = assert_damage(copy.path(), "acme", "truncated", 18, &seals, seal_line);
    let detail = chain(&report, "acme")["damage"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("ends at seq 17") && detail.contains("covers seq 20"),
        "{detail}"
    );
}

#[test]
fn a_garbage_line_is_reported_malformed() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "acme");
    let mut lines = read_lines(&file);
    lines.insert(5, "this is not a record".to_owned());
    write_lines(&file, &lines);
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1);
    let malformed = report["malformed"].as_array().unwrap();
    assert_eq!(malformed.len(), 1, "{report:#}");
    assert_eq!(malformed[0]["kind"], "malformed");
    assert_eq!(malformed[0]["location"]["path"], file.to_str().unwrap());
    assert_eq!(malformed[0]["location"]["line"], 6);
    // The store's layout names the chain, and the seq a record there would have had.
    assert_eq!(malformed[0]["chain"], "acme");
    assert_eq!(malformed[0]["seq"], 6);
    // The chain around the garbage line is intact.
    assert_intact(&report, "acme", ACME);

    let out = audit([Path::new("verify"), copy.path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!(
            "DAMAGE [malformed]: malformed line in chain `acme` at seq 6, {}:6: too short",
            file.display()
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_torn_last_line_is_reported_and_repaired_fragments_are_mentioned() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "globex");
    // What a crash mid-write leaves: half a record, no newline. It was never acknowledged,
    // so the chain itself is whole.
    let mut bytes = std::fs::read(&file).unwrap();
    let half = read_lines(&file)[7].len() / 2;
    bytes.extend_from_slice(&read_lines(&file)[7].as_bytes()[..half]);
    std::fs::write(&file, &bytes).unwrap();
    // In the newest segment that is what a write in progress looks like too: a note, not damage.
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["unfinished"][0]["line"], GLOBEX + 1, "{report:#}");
    assert_eq!(report["malformed"], serde_json::json!([]));
    assert_intact(&report, "globex", GLOBEX);
    let out = audit([Path::new("verify"), copy.path()]);
    assert!(stderr(&out).contains("incomplete line"), "{}", stderr(&out));

    // Outside a store (an export, say) the same bytes are a malformed, torn line.
    let (code, report) = verify_json(&[&file]);
    assert_eq!(code, 1, "{report:#}");
    let torn = &report["malformed"][0];
    assert_eq!(torn["location"]["line"], GLOBEX + 1);
    assert!(torn["detail"].as_str().unwrap().contains("torn"), "{report:#}");

    // Opening the store moves the fragment aside; verify then passes and mentions it.
    {
        use audit::Store;
        let mut reopened = audit::FileStore::open(copy.path()).unwrap();
        reopened.heads().unwrap();
    }
    let out = audit([Path::new("verify"), copy.path()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("torn fragment") && err.contains(&copy.path().join("torn").display().to_string()),
        "{err}"
    );

    // A newline cut off a sealed record: the record is torn, and the chain falls short of
    // its seal.
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "globex");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1);
    assert_eq!(report["unfinished"][0]["line"], GLOBEX);
    assert_eq!(chain(&report, "globex")["damage"]["kind"], "truncated");
    assert_eq!(chain(&report, "globex")["damage"]["seq"], GLOBEX);
}

#[test]
fn usage_and_io_errors_exit_2() {
    let missing = audit(["verify", "/nonexistent/audit/store"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("/nonexistent/audit/store"),
        "{}",
        stderr(&missing)
    );

    let empty = tempfile::tempdir().unwrap();
    let nothing = audit([Path::new("verify"), empty.path()]);
    assert_eq!(nothing.status.code(), Some(2));
    assert!(stderr(&nothing).contains("nothing to verify"), "{}", stderr(&nothing));

    assert_eq!(audit(["verify"]).status.code(), Some(2), "a PATH is required");
    assert_eq!(audit(["verify", "--bogus", "x"]).status.code(), Some(2));
}

#[test]
fn verify_is_linear_on_a_long_line() {
    // 64 MiB without a newline: once quadratic (21 s at 64 MiB, 230 s at 200 MiB); now read
    // once, reported as damage with its place, never held whole in memory.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.jsonl");
    let mut f = std::fs::File::create(&file).unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..64 {
        std::io::Write::write_all(&mut f, &block).unwrap();
    }
    std::io::Write::write_all(&mut f, b"\n").unwrap();
    drop(f);
    let (code, report) = verify_json(&[&file]);
    assert_eq!(code, 1, "{report:#}");
    let damage = &report["malformed"][0];
    assert_eq!(damage["kind"], "malformed");
    assert_eq!(damage["location"]["line"], 1);
    assert!(
        damage["detail"].as_str().unwrap().contains("a line of 67108864 bytes"),
        "{report:#}"
    );
}

#[test]
fn verify_says_what_is_wrong_where_and_checks_everything_else() {
    let store = build_store();
    let tampered = copy_store(store.path());
    // A record of `globex` planted in `acme`'s segment, a directory with a name no chain has,
    // and a seal line a crash cut short.
    let acme = segment(tampered.path(), "acme");
    let mut lines = read_lines(&acme);
    let planted = read_lines(&segment(tampered.path(), "globex"))[2].clone();
    lines.insert(5, planted);
    write_lines(&acme, &lines);
    std::fs::create_dir(tampered.path().join("chains/bad%zz")).unwrap();
    let seals = tampered.path().join("seals/globex.jsonl");
    let mut text = std::fs::read_to_string(&seals).unwrap();
    text.push_str(r#"{"chain":"globex","seq":8,"ha"#);
    std::fs::write(&seals, text).unwrap();

    let (code, report) = verify_json(&[tampered.path()]);
    assert_eq!(code, 1, "{report:#}");
    let malformed = report["malformed"].as_array().unwrap();
    let planted = malformed
        .iter()
        .find(|d| d["kind"] == "forged")
        .expect("the planted record");
    assert_eq!(planted["chain"], "acme");
    assert_eq!(planted["seq"], 6);
    assert_eq!(planted["location"]["line"], 6);
    assert!(
        planted["detail"]
            .as_str()
            .unwrap()
            .contains("a record of chain `globex` (seq 3)"),
        "{planted:#}"
    );
    let bad_dir = malformed
        .iter()
        .find(|d| d["detail"].as_str().unwrap().contains("bad%zz"));
    assert!(bad_dir.is_some(), "the bad directory is named: {report:#}");
    // Everything else is verified: acme's own records around the planted one, and globex.
    assert_intact(&report, "acme", ACME);
    assert_intact(&report, "globex", GLOBEX);
    // The torn seal line is a note, not damage.
    let notes: Vec<&str> = report["unfinished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert_eq!(notes, [seals.to_str().unwrap()], "{report:#}");
    assert_eq!(malformed.len(), 2, "{report:#}");

    // Only the torn seal: the store verifies, with a note.
    let torn_only = copy_store(store.path());
    let seals = torn_only.path().join("seals/acme.jsonl");
    let mut text = std::fs::read_to_string(&seals).unwrap();
    text.push_str(r#"{"chain":"acme","seq":2"#);
    std::fs::write(&seals, text).unwrap();
    let out = audit([Path::new("verify"), torn_only.path()]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("acme.jsonl:"), "{}", stderr(&out));
}
