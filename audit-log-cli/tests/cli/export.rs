//! `audit export` in each format, and the verification of what it wrote.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// Exports acme's records 5..=12 by time range (`--to` is exclusive) into a file.
fn export_range(store: &Path, out: &Path) {
    let from = acme_time(5).to_string();
    let to = acme_time(13).to_string();
    let run = audit([
        "export".as_ref(),
        store.as_os_str(),
        "--tenant".as_ref(),
        "acme".as_ref(),
        "--from".as_ref(),
        from.as_ref(),
        "--to".as_ref(),
        to.as_ref(),
        "--format".as_ref(),
        "jsonl".as_ref(),
        "--output".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(stderr(&run).contains("exported 8 of 28 records"), "{}", stderr(&run));
}

#[test]
fn a_time_range_export_is_a_segment_that_verifies() {
    let store = build_store();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme.jsonl");
    export_range(store.path(), &file);

    let stored = read_lines(&segment(store.path(), "acme"));
    let exported = read_lines(&file);
    assert_eq!(exported, stored[4..12], "JSONL export keeps the stored bytes");

    let out = audit([Path::new("verify"), &file]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let expected = format!(
        "chain `acme`: 8 records, seq 5..=12, starts mid-chain after prev_hash {}, head {}",
        hash_of(&stored[3]),
        hash_of(&stored[11])
    );
    assert!(text.contains(&expected), "{text}");

    let (code, report) = verify_json(&[&file]);
    assert_eq!(code, 0);
    let acme = chain(&report, "acme");
    assert_eq!(acme["first_seq"], 5);
    assert_eq!(acme["start_prev_hash"], hash_of(&stored[3]));

    // The store's seals check the part of the segment they cover, and a seal beyond the
    // segment's end is not a truncation: a segment ends where its time range does.
    let seals = store.path().join("seals/acme.jsonl");
    let out = audit([Path::new("verify"), &file, Path::new("--seals"), &seals]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("sealed through seq 10"), "{}", stdout(&out));

    // A segment is not a whole chain.
    let out = audit([Path::new("verify"), Path::new("--require-genesis"), &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("DAMAGE [missing]: deleted or missing record in chain `acme` at seq 1"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn dates_select_whole_days_and_exports_go_to_stdout() {
    let store = build_store();
    // acme's records are one an hour from 2026-03-01 00:00: all 20 fall on March 1st.
    let out = audit([
        "export".as_ref(),
        store.path().as_os_str(),
        "--tenant".as_ref(),
        "acme".as_ref(),
        "--from".as_ref(),
        "2026-03-01".as_ref(),
        "--to".as_ref(),
        "2026-03-02".as_ref(),
        "--format".as_ref(),
        "jsonl".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), ACME as usize);
}

#[test]
fn csv_export_parses_and_neutralises_formulas() {
    let store = build_store();
    let out = audit([
        Path::new("export"),
        store.path(),
        Path::new("--tenant"),
        Path::new("acme"),
        Path::new("--format"),
        Path::new("csv"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut reader = csv::Reader::from_reader(&out.stdout[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, audit::export::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), ACME as usize);
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let formula_row = &rows[12];
    assert_eq!(&formula_row[column("seq")], "13");
    assert_eq!(&formula_row[column("resource_id")], format!("'{FORMULA}"));
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "unneutralised cell {cell:?}"
            );
        }
    }
    assert_eq!(&rows[4][column("actor_id")], "usr_2");
    assert_eq!(&rows[0][column("ip")], "203.0.113.7");
}

#[test]
fn json_export_is_an_array_of_records() {
    let store = build_store();
    let out = audit([
        Path::new("export"),
        store.path(),
        Path::new("--format"),
        Path::new("json"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records.len() as u64, ACME + GLOBEX);
    assert_eq!(records.iter().filter(|r| r["chain"] == "globex").count() as u64, GLOBEX);
    assert_eq!(records[0]["seq"], 1);

    let empty = audit([
        Path::new("export"),
        store.path(),
        Path::new("--tenant"),
        Path::new("nobody"),
        Path::new("--format"),
        Path::new("json"),
    ]);
    let none: Vec<Value> = serde_json::from_slice(&empty.stdout).unwrap();
    assert!(none.is_empty());
}

#[test]
fn action_and_actor_filters_warn_that_the_output_is_no_segment() {
    let store = build_store();
    let out = audit([
        Path::new("export"),
        store.path(),
        Path::new("--action"),
        Path::new("billing.*"),
        Path::new("--actor"),
        Path::new("usr_2"),
        Path::new("--format"),
        Path::new("jsonl"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a complete chain segment"),
        "{}",
        stderr(&out)
    );
    // usr_2 acted at seq 5, 10, 15, 20; billing.update is every even seq.
    let seqs: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [10, 20]);

    let plain = audit([
        Path::new("export"),
        store.path(),
        Path::new("--format"),
        Path::new("jsonl"),
    ]);
    assert!(!stderr(&plain).contains("warning"), "{}", stderr(&plain));
}

#[test]
fn export_errors_name_the_file_and_line_and_exit_2() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "globex");
    let mut lines = read_lines(&file);
    lines.insert(2, "{not json".to_owned());
    write_lines(&file, &lines);
    let out = audit([
        Path::new("export"),
        copy.path(),
        Path::new("--format"),
        Path::new("csv"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}:3:", file.display())),
        "{}",
        stderr(&out)
    );

    // A failed export into a file leaves no partial file behind.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.csv");
    let out = audit([
        Path::new("export"),
        copy.path(),
        Path::new("--format"),
        Path::new("csv"),
        Path::new("-o"),
        &target,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let bad_time = audit([
        Path::new("export"),
        store.path(),
        Path::new("--from"),
        Path::new("yesterday"),
        Path::new("--format"),
        Path::new("csv"),
    ]);
    assert_eq!(bad_time.status.code(), Some(2));
    assert!(
        stderr(&bad_time).contains("`yesterday` is not a time"),
        "{}",
        stderr(&bad_time)
    );

    let empty_range = audit([
        Path::new("export"),
        store.path(),
        Path::new("--from"),
        Path::new("2026-03-02"),
        Path::new("--to"),
        Path::new("2026-03-01"),
        Path::new("--format"),
        Path::new("csv"),
    ]);
    assert_eq!(empty_range.status.code(), Some(2));
    assert!(
        stderr(&empty_range).contains("is not before --to"),
        "{}",
        stderr(&empty_range)
    );

    let no_format = audit([Path::new("export"), store.path()]);
    assert_eq!(no_format.status.code(), Some(2), "--format is required");
}

#[test]
fn a_line_still_being_written_is_left_out_of_exports() {
    let store = build_store();
    let copy = copy_store(store.path());
    let file = segment(copy.path(), "globex");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(br#"{"v":1,"id":"019ca6e8-ca80-7164-a182-d7000017"#);
    std::fs::write(&file, &bytes).unwrap();
    let out = audit([
        Path::new("export"),
        copy.path(),
        Path::new("--format"),
        Path::new("csv"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("left out 1 last line(s) without a newline"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        csv::Reader::from_reader(&out.stdout[..]).records().count() as u64,
        ACME + GLOBEX
    );
}

#[test]
fn a_closed_pipe_ends_the_export_quietly() {
    let store = build_store();
    for format in ["jsonl", "csv"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_audit"))
            .args([
                Path::new("export"),
                store.path(),
                Path::new("--format"),
                Path::new(format),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // like `| head` exiting before the export is written
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}: {}", stderr(&out));
        assert!(!stderr(&out).contains("error"), "{format}: {}", stderr(&out));
    }
}

#[test]
fn csv_cells_that_once_ran_as_formulas_are_neutralised() {
    // The cells the review found running as formulas, as resource ids of real records.
    let cells = [
        " =1+1",
        "\n=1+1",
        "\u{feff}=1+1",
        "\u{a0}=1+1",
        "\u{ff1d}1+1",
        ";=1+1",
        "|calc!A1",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut store = audit::FileStore::open(dir.path()).unwrap();
    let events = cells.iter().map(|cell| {
        audit::AuditEvent::new("customer_record.read", audit::Category::DataAccess).resource("customer", cell)
    });
    audit::store::append_events(&mut store, events).unwrap();
    drop(store);
    let out = audit([Path::new("export"), dir.path(), Path::new("--format"), Path::new("csv")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut reader = csv::Reader::from_reader(&out.stdout[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let column = header.iter().position(|h| h == "resource_id").unwrap();
    let exported: Vec<String> = reader.records().map(|r| r.unwrap()[column].to_owned()).collect();
    let expected: Vec<String> = cells.iter().map(|c| format!("'{c}")).collect();
    assert_eq!(exported, expected);
}
