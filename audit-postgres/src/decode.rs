use audit_runtime::query::StoredRecord;
use audit_runtime::store::ChainHead;
use audit_runtime::{ChainHash, StoreError, Timestamp};
use chrono::{DateTime, Utc};
use postgres::Row;

use crate::months::from_datetime;
use crate::text::decode_owned;

pub(crate) fn hash_from(bytes: &[u8]) -> Result<ChainHash, StoreError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Config("a stored hash is not 32 bytes".to_owned()))?;
    Ok(ChainHash(arr))
}

/// A head from `seq, hash, ts` columns; `ts` is NULL for a head that a purge seal set,
/// which puts no constraint on time.
pub(crate) fn head_from_row(chain: &str, r: &Row) -> Result<ChainHead, StoreError> {
    Ok(ChainHead {
        chain: chain.to_owned(),
        seq: r.get::<_, i64>(0) as u64,
        hash: hash_from(r.get(1))?,
        timestamp: head_time(r.get(2)),
    })
}

/// The time of a stored head; none (a head that a purge seal set) is no constraint.
pub(crate) fn head_time(ts: Option<DateTime<Utc>>) -> Timestamp {
    ts.map_or(Timestamp::from_unix_micros(i64::MIN), from_datetime)
}

pub(crate) fn record_from_row(r: &Row) -> Result<StoredRecord, StoreError> {
    Ok(StoredRecord {
        chain: decode_owned(r.get(0)),
        seq: r.get::<_, i64>(1) as u64,
        timestamp: from_datetime(r.get(2)),
        prev_hash: hash_from(r.get(3))?,
        hash: hash_from(r.get(4))?,
        line: r.get::<_, String>(5).into_bytes(),
    })
}
