//! Reading line streams: line by line, or in chunks of whole lines whose hashes are checked
//! on worker threads while the caller checks links in order.

use std::collections::VecDeque;
use std::io::{self, Read};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::line::LineView;

/// Bytes read at a time: big enough to amortise hand-offs, small enough that the few chunks in
/// flight keep memory constant.
const CHUNK: usize = 1 << 20;
/// Chunks being hashed ahead of the sequential checks.
const AHEAD: usize = 4;

/// The lines of `chunk`, split at `\n` exactly like `slice::split`, but found with memchr's
/// vectorized search instead of a byte at a time: splitting was a fifth of verify's time.
pub fn lines(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', chunk)
        .map(Some)
        .chain([None])
        .map(move |newline| {
            let end = newline.unwrap_or(chunk.len());
            let line = &chunk[start..end];
            start = end + 1;
            line
        })
}

/// The longest line a reader takes: no record the writer makes comes near it (see the
/// runtime's limits), so a longer line is damage, reported with its place and skipped
/// without being held in memory.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// One line of a stream, for [`for_each_line`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line and its newline (the newline cut off).
    Complete(&'a [u8]),
    /// The bytes after the last newline at the end of the stream: a write in progress, or
    /// torn by a crash.
    Unterminated(&'a [u8]),
    /// A line longer than [`MAX_LINE_BYTES`], skipped: its length in bytes.
    TooLong(u64),
}

/// A piece of a line stream, for [`for_each_hashed_chunk`].
#[derive(Clone, Copy, Debug)]
pub enum Piece<'a> {
    /// Whole lines (split them with [`lines`]), with one flag per line: whether its bytes
    /// match its `hash` member ([`LineView::hash_matches`]).
    Lines(&'a [u8], &'a [bool]),
    /// The bytes after the last newline at the end of the stream.
    Unterminated(&'a [u8]),
    /// One line longer than [`MAX_LINE_BYTES`], skipped: its length in bytes.
    TooLong(u64),
}

/// A piece of a line stream, owned.
enum Chunk {
    /// Whole lines, the last newline cut off.
    Lines(Vec<u8>),
    /// The bytes after the last newline at the end of the stream.
    Unterminated(Vec<u8>),
    /// One over-long line, skipped.
    TooLong(u64),
}

/// Splits a byte stream into chunks of whole lines, in time and memory linear in the input
/// whatever its shape: each byte is searched for a newline once, and a line longer than
/// [`MAX_LINE_BYTES`] is skipped as it streams by instead of being gathered.
struct LineChunks<R> {
    input: R,
    carry: Vec<u8>,
    /// How many leading bytes of `carry` are known to hold no newline.
    searched: usize,
    /// Bytes of an over-long line skipped so far.
    skipping: Option<u64>,
}

impl<R: Read> LineChunks<R> {
    fn new(input: R) -> Self {
        LineChunks {
            input,
            carry: Vec::new(),
            searched: 0,
            skipping: None,
        }
    }

    fn next(&mut self, progress: &mut dyn FnMut(u64)) -> io::Result<Option<Chunk>> {
        loop {
            let mut buf = std::mem::take(&mut self.carry);
            let start = buf.len();
            // Each byte is searched for a newline once.
            let unsearched = std::mem::take(&mut self.searched).min(start);
            buf.resize(start + CHUNK, 0);
            let mut filled = start;
            while filled < buf.len() {
                match self.input.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            progress((filled - start) as u64);
            let eof = filled == start;
            if let Some(skipped) = self.skipping {
                // While skipping, the carry is empty: everything read belongs to the long line
                // up to its newline.
                match memchr::memchr(b'\n', &buf[start..]) {
                    Some(i) => {
                        self.skipping = None;
                        self.carry = buf[start + i + 1..].to_vec();
                        return Ok(Some(Chunk::TooLong(skipped + i as u64)));
                    }
                    None if eof => {
                        self.skipping = None;
                        return Ok(Some(Chunk::TooLong(skipped)));
                    }
                    None => {
                        self.skipping = Some(skipped + (filled - start) as u64);
                        continue;
                    }
                }
            }
            match memchr::memrchr(b'\n', &buf[unsearched..]).map(|i| unsearched + i) {
                Some(cut) => {
                    self.carry = buf[cut + 1..].to_vec();
                    self.searched = self.carry.len();
                    buf.truncate(cut);
                    return Ok(Some(Chunk::Lines(buf)));
                }
                None if eof => return Ok((!buf.is_empty()).then_some(Chunk::Unterminated(buf))),
                None if buf.len() > MAX_LINE_BYTES => self.skipping = Some(buf.len() as u64),
                None => {
                    self.searched = buf.len();
                    self.carry = buf;
                }
            }
        }
    }
}

/// Reads `input` line by line into `each(line, line_number)`, calling `progress` with the
/// bytes read, in memory bounded by [`MAX_LINE_BYTES`] whatever the input.
pub fn for_each_line(
    input: impl Read,
    mut each: impl FnMut(Line<'_>, u64),
    progress: &mut dyn FnMut(u64),
) -> io::Result<()> {
    let mut chunks = LineChunks::new(input);
    let mut number = 0;
    while let Some(chunk) = chunks.next(progress)? {
        match chunk {
            Chunk::Lines(buf) => {
                for line in lines(&buf) {
                    number += 1;
                    match line.len() > MAX_LINE_BYTES {
                        true => each(Line::TooLong(line.len() as u64), number),
                        false => each(Line::Complete(line), number),
                    }
                }
            }
            Chunk::Unterminated(buf) => {
                number += 1;
                each(Line::Unterminated(&buf), number);
            }
            Chunk::TooLong(bytes) => {
                number += 1;
                each(Line::TooLong(bytes), number);
            }
        }
    }
    Ok(())
}

/// A chunk sent to a hashing worker, and where its flags go.
type Job = (Vec<u8>, Sender<(Vec<u8>, Vec<bool>)>);

/// Reads `input` in chunks of whole lines and checks every line's hash on `threads` worker
/// threads (the expensive, independent part), handing each piece in order to `each` (see
/// [`Piece`]). Links, seqs and seals stay sequential in `each`. With `threads` at 0 or 1 (a
/// browser has no threads to start) the hashing runs on the calling thread. Time and memory
/// are linear in the input whatever its shape.
pub fn for_each_hashed_chunk(
    input: impl Read,
    threads: usize,
    progress: &mut dyn FnMut(u64),
    mut each: impl FnMut(Piece<'_>),
) -> io::Result<()> {
    let mut chunks = LineChunks::new(input);
    if threads <= 1 {
        let mut flags = Vec::new();
        while let Some(chunk) = chunks.next(progress)? {
            match chunk {
                Chunk::Lines(buf) => {
                    flags.clear();
                    flags.extend(lines(&buf).map(LineView::hash_matches));
                    each(Piece::Lines(&buf, &flags));
                }
                Chunk::Unterminated(buf) => each(Piece::Unterminated(&buf)),
                Chunk::TooLong(bytes) => each(Piece::TooLong(bytes)),
            }
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let (job_tx, job_rx) = bounded::<Job>(AHEAD);
        for _ in 0..threads.min(8) {
            let job_rx = job_rx.clone();
            scope.spawn(move || {
                for (chunk, reply) in job_rx {
                    let flags = lines(&chunk).map(LineView::hash_matches).collect();
                    let _ = reply.send((chunk, flags));
                }
            });
        }
        drop(job_rx);
        let mut pending: VecDeque<Receiver<(Vec<u8>, Vec<bool>)>> = VecDeque::new();
        let finish_front = |pending: &mut VecDeque<Receiver<(Vec<u8>, Vec<bool>)>>, each: &mut dyn FnMut(Piece<'_>)| {
            if let Some(rx) = pending.pop_front() {
                let (chunk, flags) = rx.recv().expect("hashing worker");
                each(Piece::Lines(&chunk, &flags));
            }
        };
        while let Some(chunk) = chunks.next(progress)? {
            match chunk {
                Chunk::Lines(buf) => {
                    if pending.len() >= AHEAD {
                        finish_front(&mut pending, &mut each);
                    }
                    let (reply_tx, reply_rx) = bounded(1);
                    job_tx.send((buf, reply_tx)).expect("hashing workers");
                    pending.push_back(reply_rx);
                }
                Chunk::Unterminated(buf) => {
                    while !pending.is_empty() {
                        finish_front(&mut pending, &mut each);
                    }
                    each(Piece::Unterminated(&buf));
                    return Ok(());
                }
                Chunk::TooLong(bytes) => {
                    while !pending.is_empty() {
                        finish_front(&mut pending, &mut each);
                    }
                    each(Piece::TooLong(bytes));
                }
            }
        }
        while !pending.is_empty() {
            finish_front(&mut pending, &mut each);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_slice_split() {
        for chunk in [
            &b""[..],
            b"\n",
            b"a",
            b"a\n",
            b"a\nb",
            b"\n\nab\n\ncd",
            b"{\"seq\":1}\n{\"seq\":2}",
        ] {
            let expected: Vec<&[u8]> = chunk.split(|&b| b == b'\n').collect();
            assert_eq!(
                lines(chunk).collect::<Vec<_>>(),
                expected,
                "{:?}",
                String::from_utf8_lossy(chunk)
            );
        }
    }

    #[test]
    fn threads_or_none_hand_over_the_same_lines() {
        let text: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .chain(*b"tail")
            .collect();
        let collect = |threads| {
            let mut seen = Vec::new();
            let mut tail = None;
            for_each_hashed_chunk(&text[..], threads, &mut |_| {}, |piece| match piece {
                Piece::Lines(chunk, flags) => {
                    let lines: Vec<&[u8]> = lines(chunk).collect();
                    assert_eq!(lines.len(), flags.len());
                    seen.extend(lines.into_iter().map(<[u8]>::to_vec));
                }
                Piece::Unterminated(chunk) => tail = Some(chunk.to_vec()),
                Piece::TooLong(bytes) => panic!("no line is that long: {bytes}"),
            })
            .unwrap();
            (seen, tail)
        };
        let (one, tail) = collect(1);
        assert_eq!(one.len(), 100_000);
        assert_eq!(tail.as_deref(), Some(&b"tail"[..]));
        assert_eq!(collect(4), (one, tail));
    }

    #[test]
    fn over_long_lines_are_skipped_with_their_length_and_the_rest_read() {
        let long = MAX_LINE_BYTES + 3 * CHUNK + 17;
        let mut text = b"first\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', long));
        text.extend_from_slice(b"\nlast\n");
        text.extend(std::iter::repeat_n(b'y', long));
        let mut seen = Vec::new();
        for_each_line(&text[..], |line, n| seen.push((n, line.to_owned_line())), &mut |_| {}).unwrap();
        assert_eq!(
            seen,
            [
                (1, Ok(b"first".to_vec())),
                (2, Err(long as u64)),
                (3, Ok(b"last".to_vec())),
                (4, Err(long as u64))
            ]
        );
        let mut pieces = Vec::new();
        for threads in [1, 3] {
            pieces.clear();
            for_each_hashed_chunk(&text[..], threads, &mut |_| {}, |piece| {
                pieces.push(match piece {
                    Piece::Lines(chunk, _) => format!("lines {}", lines(chunk).count()),
                    Piece::Unterminated(chunk) => format!("tail {}", chunk.len()),
                    Piece::TooLong(bytes) => format!("long {bytes}"),
                })
            })
            .unwrap();
            assert_eq!(
                pieces,
                [
                    "lines 1".to_owned(),
                    format!("long {long}"),
                    "lines 1".to_owned(),
                    format!("long {long}")
                ]
            );
        }
    }

    impl Line<'_> {
        fn to_owned_line(self) -> Result<Vec<u8>, u64> {
            match self {
                Line::Complete(l) | Line::Unterminated(l) => Ok(l.to_vec()),
                Line::TooLong(n) => Err(n),
            }
        }
    }
}
