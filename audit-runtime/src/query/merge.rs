use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{Order, StoredRecord};
use crate::Timestamp;
use crate::error::StoreError;

/// A k-way merge of per-chain streams by `(timestamp, chain, seq)`: memory grows with the
/// number of chains, not of records.
pub(crate) struct Merge<I> {
    streams: Vec<I>,
    heap: BinaryHeap<HeapItem>,
    order: Order,
    started: bool,
    error: Option<StoreError>,
}

struct HeapItem {
    record: StoredRecord,
    stream: usize,
    order: Order,
}

impl HeapItem {
    fn key(&self) -> (Timestamp, &str, u64) {
        (self.record.timestamp, &self.record.chain, self.record.seq)
    }
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: invert for oldest first.
        match self.order {
            Order::OldestFirst => other.key().cmp(&self.key()),
            Order::NewestFirst => self.key().cmp(&other.key()),
        }
    }
}

impl<I: Iterator<Item = Result<StoredRecord, StoreError>>> Merge<I> {
    pub(crate) fn new(streams: Vec<I>, order: Order) -> Self {
        Merge {
            streams,
            heap: BinaryHeap::new(),
            order,
            started: false,
            error: None,
        }
    }

    fn pull(&mut self, stream: usize) {
        match self.streams[stream].next() {
            Some(Ok(record)) => self.heap.push(HeapItem {
                record,
                stream,
                order: self.order,
            }),
            Some(Err(e)) if self.error.is_none() => self.error = Some(e),
            Some(Err(_)) | None => {}
        }
    }
}

impl<I: Iterator<Item = Result<StoredRecord, StoreError>>> Iterator for Merge<I> {
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.streams.len() {
                self.pull(i);
            }
        }
        if let Some(e) = self.error.take() {
            self.heap.clear();
            self.streams.clear();
            return Some(Err(e));
        }
        let item = self.heap.pop()?;
        self.pull(item.stream);
        Some(Ok(item.record))
    }
}
