use super::{Cursor, StoredRecord};
use crate::error::StoreError;

/// Helpers for stores that read in pages by keyset (the SQL stores): each page is fetched
/// after the last record of the previous one, so memory stays bounded and no long-lived
/// cursor or transaction is held.
pub struct Paged<F> {
    fetch: F,
    page: std::vec::IntoIter<StoredRecord>,
    last: Option<Cursor>,
    remaining: Option<usize>,
    page_size: usize,
    exhausted: bool,
}

impl<F> Paged<F>
where
    F: FnMut(Option<&Cursor>, usize) -> Result<Vec<StoredRecord>, StoreError>,
{
    /// Pages of `page_size` records from `fetch(after, n)`, which returns at most `n` records
    /// after the cursor (or from the start), at most `limit` in all.
    pub fn new(fetch: F, start: Option<Cursor>, limit: Option<usize>, page_size: usize) -> Self {
        Paged {
            fetch,
            page: Vec::new().into_iter(),
            last: start,
            remaining: limit,
            page_size: page_size.max(1),
            exhausted: false,
        }
    }
}

impl<F> Iterator for Paged<F>
where
    F: FnMut(Option<&Cursor>, usize) -> Result<Vec<StoredRecord>, StoreError>,
{
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == Some(0) {
            return None;
        }
        if let Some(r) = self.page.next() {
            self.last = Some(Cursor::after(&r));
            if let Some(n) = &mut self.remaining {
                *n -= 1;
            }
            return Some(Ok(r));
        }
        if self.exhausted {
            return None;
        }
        let want = self.remaining.map_or(self.page_size, |n| n.min(self.page_size));
        match (self.fetch)(self.last.as_ref(), want) {
            Err(e) => {
                self.exhausted = true;
                Some(Err(e))
            }
            Ok(records) => {
                if records.len() < want {
                    self.exhausted = true;
                }
                if records.is_empty() {
                    return None;
                }
                self.page = records.into_iter();
                self.next()
            }
        }
    }
}
