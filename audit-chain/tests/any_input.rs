//! No input crashes a reader: any bytes, as a record line, a seal line or a whole stream.

use audit_chain::read::{Line, Piece, for_each_hashed_chunk, for_each_line};
use audit_chain::{ChainHash, LineView, Location, StoredRecord, StoredSeal, Timestamp, Verifier};
use proptest::prelude::*;

/// Bytes that look like records often enough to reach deep into the parsers.
fn near_records() -> impl Strategy<Value = Vec<u8>> {
    let real = br#"{"v":1,"id":"01938a5e-0000-7000-8000-000000000000","chain":"acme","seq":1,"timestamp":"2026-11-26T07:16:51.123456Z","actor":{"type":"system","id":"x","auth":"none"},"action":"a.b","category":"admin","outcome":{"status":"success"},"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"0000000000000000000000000000000000000000000000000000000000000000"}"#.to_vec();
    let odd = br#"{"v":1,"id":"01938a5e-0000-7000-8000-000000000000","chain":"a\u0000\"\\b","seq":18446744073709551615,"timestamp":"9999-99-99T99:99:99.999999Z","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"0000000000000000000000000000000000000000000000000000000000000000"}"#.to_vec();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        (0..real.len(), any::<u8>()).prop_map({
            let real = real.clone();
            move |(at, b)| {
                let mut line = real.clone();
                line[at] = b;
                line
            }
        }),
        (0..odd.len()).prop_map(move |cut| odd[..cut].to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_line_crashes_the_parsers_or_the_verifier(lines in proptest::collection::vec(near_records(), 1..8)) {
        let mut verifier = Verifier::new();
        for (n, line) in lines.iter().enumerate() {
            let _ = LineView::parse(line);
            let _ = LineView::hash_matches(line);
            let _ = StoredRecord::from_line(line.clone());
            let _ = StoredSeal::from_line(line);
            let _ = ChainHash::from_hex(line);
            let _ = Timestamp::parse(&String::from_utf8_lossy(line));
            verifier.add_seal_line(line, "seals".as_ref(), n as u64 + 1);
            verifier.push(line, || Location { path: "x".into(), line: n as u64 + 1 }, n % 2 == 0);
        }
        let _ = verifier.finish();
    }

    #[test]
    fn no_stream_crashes_the_readers(stream in proptest::collection::vec(any::<u8>(), 0..4096), threads in 0usize..4) {
        let mut lines = 0;
        for_each_line(&stream[..], |line, _| if !matches!(line, Line::TooLong(_)) { lines += 1 }, &mut |_| {}).unwrap();
        let mut pieces = 0;
        for_each_hashed_chunk(&stream[..], threads, &mut |_| {}, |piece| match piece {
            Piece::Lines(chunk, flags) => pieces += audit_chain::read::lines(chunk).zip(flags).count(),
            Piece::Unterminated(_) | Piece::TooLong(_) => pieces += 1,
        }).unwrap();
        prop_assert_eq!(lines, pieces);
    }
}
