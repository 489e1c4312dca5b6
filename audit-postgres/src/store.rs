use audit_runtime::copy::RecordSink;
use audit_runtime::query::{Indexed, StoredSeal};
use audit_runtime::store::{ChainBatch, ChainHead, Seal, Store};
use audit_runtime::{ChainHash, StoreError, Timestamp};

use crate::PgStore;
use crate::decode::hash_from;
use crate::insert::Rows;
use crate::months::from_datetime;

fn genesis(chain: &str) -> ChainHead {
    ChainHead {
        chain: chain.to_owned(),
        seq: 0,
        hash: ChainHash::GENESIS,
        timestamp: Timestamp::from_unix_micros(i64::MIN),
    }
}

impl Store for PgStore {
    fn heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT chain, seq, hash, ts FROM \"{}\".audit_heads WHERE seq > 0",
                    self.config.schema
                ),
                &[],
            )
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(ChainHead {
                    chain: r.get(0),
                    seq: r.get::<_, i64>(1) as u64,
                    hash: hash_from(r.get(2))?,
                    timestamp: from_datetime(r.get(3)),
                })
            })
            .collect()
    }

    fn append(&mut self, batch: &mut ChainBatch, head: &mut ChainHead) -> Result<(), StoreError> {
        let chain = batch.chain().to_owned();
        let mut new_head = head.clone();
        self.locked_append(&chain, |stored| {
            // Another process may have appended since: chain onto what is stored.
            new_head = stored.unwrap_or_else(|| genesis(&chain));
            let mut prev = new_head.hash;
            batch.chain_onto(&mut new_head);
            let mut rows = Rows::with_capacity(batch.len());
            for (entry, c, line) in batch.records() {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                rows.push(Indexed::from_entry(entry), c.seq, c.timestamp, c.hash, prev, line)?;
                prev = c.hash;
            }
            Ok(rows)
        })?;
        *head = new_head;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        // Every append committed (synchronous_commit is the server's durability setting).
        Ok(())
    }

    fn seal(&mut self, seals: &[Seal]) -> Result<(), StoreError> {
        let seals: Vec<StoredSeal> = seals.iter().cloned().map(StoredSeal::from).collect();
        self.add_seals(&seals)
    }
}
