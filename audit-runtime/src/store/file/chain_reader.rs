//! One chain of a file store read segment by segment, oldest or newest first, skipping whole
//! segments outside a query's time range.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::Timestamp;
use crate::error::StoreError;
use crate::query::{Order, Query, StoredRecord};
use crate::record::{LineView, Malformed};

/// The first record's timestamp of a segment (None when it is empty or unreadable yet).
fn first_timestamp(path: &Path) -> Result<Option<Timestamp>, StoreError> {
    let file = File::open(path).map_err(StoreError::io(path))?;
    let mut line = Vec::new();
    BufReader::with_capacity(8 << 10, file)
        .read_until(b'\n', &mut line)
        .map_err(StoreError::io(path))?;
    if line.last() != Some(&b'\n') {
        return Ok(None);
    }
    line.pop();
    Ok(LineView::parse(&line)
        .ok()
        .and_then(|v| Timestamp::parse(v.timestamp).ok()))
}

fn first_seq_of(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn corrupt(path: &Path, line: u64, m: Malformed) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        line,
        message: m.0,
    }
}

/// A chain's records oldest first, skipping whole segments before `from` or below
/// `after_seq`, and stopping at `to`.
pub(super) struct ForwardChain {
    segments: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, BufReader<File>, u64)>,
    to: Option<Timestamp>,
    done: bool,
    buf: Vec<u8>,
}

impl ForwardChain {
    pub(super) fn new(segs: Vec<PathBuf>, q: &Query, after_seq: u64) -> Result<Self, StoreError> {
        // Timestamps never decrease along a chain: a segment whose successor starts before
        // `from` holds nothing at or after `from`.
        let mut start = 0;
        let from = match (&q.after, q.order) {
            (Some(c), Order::OldestFirst) => q.from.max(Some(c.timestamp)),
            _ => q.from,
        };
        for (i, seg) in segs.iter().enumerate().skip(1) {
            let skip_by_seq = after_seq > 0 && first_seq_of(seg) <= after_seq + 1;
            let skip_by_time = match from {
                Some(f) => first_timestamp(seg)?.is_some_and(|t| t < f),
                None => false,
            };
            if skip_by_seq || skip_by_time {
                start = i;
            } else {
                break;
            }
        }
        let rest: Vec<PathBuf> = segs.into_iter().skip(start).collect();
        Ok(ForwardChain {
            segments: rest.into_iter(),
            current: None,
            to: q.to,
            done: false,
            buf: Vec::new(),
        })
    }
}

impl Iterator for ForwardChain {
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let path = self.segments.next()?;
                match File::open(&path) {
                    Ok(f) => self.current = Some((path, BufReader::with_capacity(128 << 10, f), 0)),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(StoreError::io(&path)(e)));
                    }
                }
            }
            let (path, reader, line_no) = self.current.as_mut().expect("opened");
            self.buf.clear();
            match reader.read_until(b'\n', &mut self.buf) {
                Err(e) => {
                    self.done = true;
                    return Some(Err(StoreError::io(path.as_path())(e)));
                }
                Ok(0) => {
                    self.current = None;
                    continue;
                }
                Ok(_) => {}
            }
            *line_no += 1;
            if self.buf.last() != Some(&b'\n') {
                // Still being written (or torn by a crash, which the writer repairs).
                self.current = None;
                continue;
            }
            self.buf.pop();
            if self.buf.is_empty() {
                continue;
            }
            let record = match StoredRecord::from_line(std::mem::take(&mut self.buf)) {
                Ok(r) => r,
                Err(m) => {
                    self.done = true;
                    return Some(Err(corrupt(path, *line_no, m)));
                }
            };
            if self.to.is_some_and(|t| record.timestamp >= t) {
                self.done = true;
                return None;
            }
            return Some(Ok(record));
        }
    }
}

/// Lines of a file from the last complete one backwards, in bounded memory.
struct RevLines {
    file: File,
    pos: u64,
    buf: Vec<u8>,
}

impl RevLines {
    fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        // Drop a last line still being written: everything after the last newline.
        let mut end = len;
        let mut chunk = vec![0u8; 64 << 10];
        let mut complete = 0;
        while end > 0 {
            let start = end.saturating_sub(chunk.len() as u64);
            let part = &mut chunk[..(end - start) as usize];
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(part)?;
            if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
                complete = start + i as u64 + 1;
                break;
            }
            end = start;
        }
        Ok(RevLines {
            file,
            pos: complete,
            buf: Vec::new(),
        })
    }

    fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if !self.buf.is_empty() {
                let body = &self.buf[..self.buf.len() - 1];
                if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
                    let line = body[i + 1..].to_vec();
                    self.buf.truncate(i + 1);
                    return Ok(Some(line));
                }
                if self.pos == 0 {
                    let line = body.to_vec();
                    self.buf.clear();
                    return Ok(Some(line));
                }
            } else if self.pos == 0 {
                return Ok(None);
            }
            let n = self.pos.min(64 << 10);
            self.pos -= n;
            let mut chunk = vec![0u8; n as usize];
            self.file.seek(SeekFrom::Start(self.pos))?;
            self.file.read_exact(&mut chunk)?;
            chunk.extend_from_slice(&self.buf);
            self.buf = chunk;
        }
    }
}

/// A chain's records newest first, skipping whole segments at or after `to`, stopping
/// before `from`.
pub(super) struct BackwardChain {
    segments: Vec<PathBuf>,
    current: Option<(PathBuf, RevLines)>,
    from: Option<Timestamp>,
    done: bool,
}

impl BackwardChain {
    pub(super) fn new(mut segs: Vec<PathBuf>, q: &Query) -> Result<Self, StoreError> {
        let to = match (&q.after, q.order) {
            // Records at the cursor's time may still follow it (other chains, same micro).
            (Some(c), Order::NewestFirst) => {
                q.to.min(Some(Timestamp::from_unix_micros(c.timestamp.unix_micros() + 1)))
            }
            _ => q.to,
        };
        if let Some(to) = to {
            while segs.len() > 1 {
                let last = segs.last().expect("non-empty");
                if first_timestamp(last)?.is_some_and(|t| t >= to) {
                    segs.pop();
                } else {
                    break;
                }
            }
        }
        Ok(BackwardChain {
            segments: segs,
            current: None,
            from: q.from,
            done: false,
        })
    }
}

impl Iterator for BackwardChain {
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let path = self.segments.pop()?;
                match RevLines::open(&path) {
                    Ok(r) => self.current = Some((path, r)),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(StoreError::io(&path)(e)));
                    }
                }
            }
            let (path, lines) = self.current.as_mut().expect("opened");
            let line = match lines.next_line() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(StoreError::io(path.as_path())(e)));
                }
                Ok(None) => {
                    self.current = None;
                    continue;
                }
                Ok(Some(l)) if l.is_empty() => continue,
                Ok(Some(l)) => l,
            };
            let record = match StoredRecord::from_line(line) {
                Ok(r) => r,
                Err(m) => {
                    self.done = true;
                    return Some(Err(corrupt(path, 0, m)));
                }
            };
            if self.from.is_some_and(|f| record.timestamp < f) {
                self.done = true;
                return None;
            }
            return Some(Ok(record));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_lines_cross_chunks_and_skip_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str("torn");
        std::fs::write(&path, &text).unwrap();
        let mut r = RevLines::open(&path).unwrap();
        let mut got = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            got.push(String::from_utf8(l).unwrap());
        }
        assert_eq!(got.len(), 20_000);
        assert_eq!(got[0], "line 19999");
        assert_eq!(got[19_999], "line 0");
    }
}
