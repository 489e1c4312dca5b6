//! Reading line streams: line by line, or in chunks of whole lines whose hashes are checked
//! on worker threads while the caller checks links in order.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::line::LineView;

/// Reads `input` line by line into `each(line_without_newline, line_number, had_newline)`,
/// calling `progress` with the bytes read.
pub fn for_each_line(
    input: impl Read,
    mut each: impl FnMut(&[u8], u64, bool),
    progress: &mut dyn FnMut(u64),
) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(256 << 10, input);
    let mut line = Vec::with_capacity(4096);
    let mut number = 0;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        progress(n as u64);
        let had_newline = line.last() == Some(&b'\n');
        let body = if had_newline {
            &line[..line.len() - 1]
        } else {
            &line[..]
        };
        each(body, number, had_newline);
    }
}

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

/// A piece of a line stream.
enum Chunk {
    /// Whole lines, the last newline cut off.
    Lines(Vec<u8>),
    /// The bytes after the last newline at the end of the stream.
    Unterminated(Vec<u8>),
}

/// Splits a byte stream into chunks of whole lines.
struct LineChunks<R> {
    input: R,
    carry: Vec<u8>,
}

impl<R: Read> LineChunks<R> {
    fn next(&mut self, progress: &mut dyn FnMut(u64)) -> io::Result<Option<Chunk>> {
        loop {
            let mut buf = std::mem::take(&mut self.carry);
            let start = buf.len();
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
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(cut) => {
                    self.carry = buf[cut + 1..].to_vec();
                    buf.truncate(cut);
                    return Ok(Some(Chunk::Lines(buf)));
                }
                None if eof => return Ok((!buf.is_empty()).then_some(Chunk::Unterminated(buf))),
                None => self.carry = buf,
            }
        }
    }
}

/// A chunk sent to a hashing worker, and where its flags go.
type Job = (Vec<u8>, Sender<(Vec<u8>, Vec<bool>)>);

/// Reads `input` in chunks of whole lines and checks every line's hash on `threads` worker
/// threads (the expensive, independent part), handing each chunk in order to `each` with one
/// flag per line ([`LineView::hash_matches`]), and a last line without newline with `None`.
/// Links, seqs and seals stay sequential in `each`. With `threads` at 0 or 1 (a browser has
/// no threads to start) the hashing runs on the calling thread.
pub fn for_each_hashed_chunk(
    input: impl Read,
    threads: usize,
    progress: &mut dyn FnMut(u64),
    mut each: impl FnMut(&[u8], Option<&[bool]>),
) -> io::Result<()> {
    let mut chunks = LineChunks {
        input,
        carry: Vec::new(),
    };
    if threads <= 1 {
        let mut flags = Vec::new();
        while let Some(chunk) = chunks.next(progress)? {
            match chunk {
                Chunk::Lines(buf) => {
                    flags.clear();
                    flags.extend(lines(&buf).map(LineView::hash_matches));
                    each(&buf, Some(&flags));
                }
                Chunk::Unterminated(buf) => each(&buf, None),
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
        let mut finish_front = |pending: &mut VecDeque<Receiver<(Vec<u8>, Vec<bool>)>>| {
            if let Some(rx) = pending.pop_front() {
                let (chunk, flags) = rx.recv().expect("hashing worker");
                each(&chunk, Some(&flags));
            }
        };
        while let Some(chunk) = chunks.next(progress)? {
            match chunk {
                Chunk::Lines(buf) => {
                    if pending.len() >= AHEAD {
                        finish_front(&mut pending);
                    }
                    let (reply_tx, reply_rx) = bounded(1);
                    job_tx.send((buf, reply_tx)).expect("hashing workers");
                    pending.push_back(reply_rx);
                }
                Chunk::Unterminated(buf) => {
                    while !pending.is_empty() {
                        finish_front(&mut pending);
                    }
                    each(&buf, None);
                    return Ok(());
                }
            }
        }
        while !pending.is_empty() {
            finish_front(&mut pending);
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
            for_each_hashed_chunk(&text[..], threads, &mut |_| {}, |chunk, flags| match flags {
                Some(flags) => {
                    let lines: Vec<&[u8]> = lines(chunk).collect();
                    assert_eq!(lines.len(), flags.len());
                    seen.extend(lines.into_iter().map(<[u8]>::to_vec));
                }
                None => tail = Some(chunk.to_vec()),
            })
            .unwrap();
            (seen, tail)
        };
        let (one, tail) = collect(1);
        assert_eq!(one.len(), 100_000);
        assert_eq!(tail.as_deref(), Some(&b"tail"[..]));
        assert_eq!(collect(4), (one, tail));
    }
}
