use std::path::PathBuf;

use audit_runtime::StoreError;
use audit_runtime::check_continues;
use audit_runtime::copy::RecordSink;
use audit_runtime::query::{Indexed, RecordSource, StoredRecord, StoredSeal};
use audit_runtime::store::ChainHead;

use crate::PgStore;
use crate::config::describe;
use crate::decode::head_from_row;
use crate::insert::Rows;
use crate::months::to_datetime;
use crate::text::encode_text;

impl RecordSink for PgStore {
    fn describe(&self) -> String {
        describe(&self.config)
    }

    fn stored_head(&mut self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let row = self
            .client
            .query_opt(&self.statements.head, &[&encode_text(chain)])
            .map_err(err)?;
        row.map(|r| head_from_row(chain, &r)).transpose()
    }

    fn append_records(&mut self, chain: &str, records: &[StoredRecord]) -> Result<(), StoreError> {
        let name = describe(&self.config);
        self.locked_append(chain, |head| {
            check_continues(head.as_ref(), records).map_err(StoreError::Config)?;
            let mut rows = Rows::with_capacity(records.len());
            for r in records {
                let ix = Indexed::from_line(&r.line).map_err(|m| StoreError::Corrupt {
                    path: PathBuf::from(&name),
                    line: r.seq,
                    message: m.0,
                })?;
                rows.push(chain, ix, r.seq, r.timestamp, r.hash, r.prev_hash, &r.line)?;
            }
            Ok(rows)
        })
    }

    fn stored_seals(&mut self) -> Result<Vec<StoredSeal>, StoreError> {
        self.seals()
    }

    fn add_seals(&mut self, seals: &[StoredSeal]) -> Result<(), StoreError> {
        self.reconnect_if_closed()?;
        let err = self.err();
        let mut tx = self.client.transaction().map_err(&err)?;
        for s in seals {
            tx.execute(
                &self.statements.insert_seal,
                &[
                    &encode_text(&s.seal.chain),
                    &(s.seal.seq as i64),
                    &&s.seal.hash.0[..],
                    &to_datetime(s.seal.sealed_at),
                    &s.purged,
                ],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
