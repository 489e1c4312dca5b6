//! A whole record parsed into the event model, for export and queries. Verification needs
//! only the chain members, which [`LineView`] reads without parsing anything else.

use serde::{Deserialize, Serialize};

pub use audit_chain::{HASH_SUFFIX_LEN, LineView, Malformed, SCHEMA_VERSION};

use crate::event::{Actor, Category, Changes, Context, Outcome, Resource};
use crate::{ChainHash, Timestamp};

/// A whole record, parsed with serde for export and queries (verification does not need it).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Record {
    /// Schema version.
    pub v: u32,
    /// UUIDv7 of the event.
    pub id: uuid::Uuid,
    /// Chain key.
    pub chain: String,
    /// Position in the chain.
    pub seq: u64,
    /// When the event happened.
    pub timestamp: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: String,
    /// The action's category.
    pub category: Category,
    /// On what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Whether it worked.
    pub outcome: Outcome,
    /// From where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// For which customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Before/after state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// Previous record's hash.
    pub prev_hash: ChainHash,
    /// This record's hash.
    pub hash: ChainHash,
}

impl Record {
    /// Parses one line with serde, naming what is wrong.
    pub fn parse(line: &[u8]) -> Result<Self, Malformed> {
        serde_json::from_slice(line).map_err(|e| Malformed(format!("not a valid record: {e}")))
    }

    /// [`Record::parse`] as a strict verification check (see
    /// [`Verifier::with_record_check`](crate::verify::Verifier::with_record_check)).
    pub fn check(line: &[u8]) -> Result<(), Malformed> {
        Self::parse(line).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ChainHead, event_batch};
    use crate::{AuditEvent, AuthMethod};

    #[test]
    fn escaped_chain_keys_parse() {
        let chain = "we\"ird\\key\n";
        let event = AuditEvent::new("user.login", Category::Authentication)
            .actor(Actor::user("usr_1", AuthMethod::Password))
            .tenant(chain);
        let mut batch = event_batch(chain, [event]);
        let mut head = ChainHead::genesis(chain);
        let line = batch.chain_onto(&mut head).to_vec();
        let record = Record::parse(&line).unwrap();
        assert_eq!(record.chain, chain);
        assert_eq!(record.tenant.as_deref(), Some(chain));
        assert_eq!(record.hash, head.hash);
    }
}
