use audit_runtime::copy::RecordSink;
use audit_runtime::query::{Indexed, StoredSeal};
use audit_runtime::store::{ChainBatch, ChainHead, Seal, SetAside, Store};
use audit_runtime::{ChainHash, StoreError, Timestamp};

use crate::PgStore;
use crate::decode::{hash_from, head_time};
use crate::insert::Rows;
use crate::months::{from_datetime, to_datetime};
use crate::text::{decode_owned, encode_text};

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
                    "SELECT chain, seq, hash, nullif(ts, '-infinity') FROM \"{}\".audit_heads WHERE seq > 0",
                    self.config.schema
                ),
                &[],
            )
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(ChainHead {
                    chain: decode_owned(r.get(0)),
                    seq: r.get::<_, i64>(1) as u64,
                    hash: hash_from(r.get(2))?,
                    timestamp: head_time(r.get(3)),
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
                rows.push(
                    &chain,
                    Indexed::from_entry(entry),
                    c.seq,
                    c.timestamp,
                    c.hash,
                    prev,
                    line,
                )?;
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

    /// Keeps refused records in `audit_set_aside` (chain and reason in the column encoding,
    /// the event's bytes as they are), in one transaction.
    fn set_aside(&mut self, records: &[SetAside]) -> Result<(), StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let sql = format!(
            "INSERT INTO \"{}\".audit_set_aside (chain, set_aside_at, reason, event) VALUES ($1, $2, $3, $4)",
            self.config.schema
        );
        let mut tx = self.client.transaction().map_err(&err)?;
        let insert = tx.prepare(&sql).map_err(&err)?;
        for r in records {
            tx.execute(
                &insert,
                &[
                    &encode_text(&r.chain),
                    &to_datetime(r.at),
                    &encode_text(&r.reason),
                    &r.event,
                ],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }
}

impl PgStore {
    /// The records kept apart by [`Store::set_aside`], oldest first.
    pub fn set_aside_records(&mut self) -> Result<Vec<SetAside>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT chain, set_aside_at, reason, event FROM \"{}\".audit_set_aside ORDER BY set_aside_at",
                    self.config.schema
                ),
                &[],
            )
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| SetAside {
                chain: decode_owned(r.get(0)),
                at: from_datetime(r.get(1)),
                reason: decode_owned(r.get(2)),
                event: r.get(3),
            })
            .collect())
    }
}
