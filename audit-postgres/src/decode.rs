use audit_runtime::query::StoredRecord;
use audit_runtime::store::ChainHead;
use audit_runtime::{ChainHash, StoreError};
use postgres::Row;

use crate::months::from_datetime;

pub(crate) fn hash_from(bytes: &[u8]) -> Result<ChainHash, StoreError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Config("a stored hash is not 32 bytes".to_owned()))?;
    Ok(ChainHash(arr))
}

pub(crate) fn head_from_row(chain: &str, r: &Row) -> Result<ChainHead, StoreError> {
    Ok(ChainHead {
        chain: chain.to_owned(),
        seq: r.get::<_, i64>(0) as u64,
        hash: hash_from(r.get(1))?,
        timestamp: from_datetime(r.get(2)),
    })
}

pub(crate) fn record_from_row(r: &Row) -> Result<StoredRecord, StoreError> {
    Ok(StoredRecord {
        chain: r.get(0),
        seq: r.get::<_, i64>(1) as u64,
        timestamp: from_datetime(r.get(2)),
        prev_hash: hash_from(r.get(3))?,
        hash: hash_from(r.get(4))?,
        line: r.get::<_, String>(5).into_bytes(),
    })
}
