use serde::Deserialize;

use super::OutcomeStatus;
use crate::event::Category;
use crate::record::Malformed;
use crate::store::Entry;

/// The members of a record that stores index, read from a line or from a batch entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indexed {
    /// The record's id.
    pub id: uuid::Uuid,
    /// The `tenant` member (absent for the default chain).
    pub tenant: Option<String>,
    /// The action.
    pub action: String,
    /// The category.
    pub category: Category,
    /// The actor's id.
    pub actor_id: String,
    /// The resource's type.
    pub resource_type: Option<String>,
    /// The resource's id.
    pub resource_id: Option<String>,
    /// The outcome's status.
    pub outcome: OutcomeStatus,
}

#[derive(Deserialize)]
struct IndexedLine {
    id: uuid::Uuid,
    actor: ActorLine,
    action: String,
    category: Category,
    #[serde(default)]
    resource: Option<ResourceLine>,
    outcome: OutcomeLine,
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Deserialize)]
struct ActorLine {
    id: String,
}

#[derive(Deserialize)]
struct ResourceLine {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Deserialize)]
struct OutcomeLine {
    status: OutcomeStatus,
}

impl Indexed {
    /// Reads the indexed members of a stored line (skipping everything else).
    pub fn from_line(line: &[u8]) -> Result<Self, Malformed> {
        let l: IndexedLine = serde_json::from_slice(line).map_err(|e| Malformed(format!("not a valid record: {e}")))?;
        Ok(Indexed {
            id: l.id,
            tenant: l.tenant,
            action: l.action,
            category: l.category,
            actor_id: l.actor.id,
            resource_type: l.resource.as_ref().map(|r| r.kind.clone()),
            resource_id: l.resource.map(|r| r.id),
            outcome: l.outcome.status,
        })
    }

    /// The indexed members of a batch entry (no parsing).
    pub fn from_entry(e: &Entry) -> Self {
        Indexed {
            id: e.id,
            tenant: e.tenant.clone(),
            action: e.action.to_string(),
            category: e.category,
            actor_id: e.actor.id.clone(),
            resource_type: e.resource.as_ref().map(|r| r.kind.to_string()),
            resource_id: e.resource.as_ref().map(|r| r.id.clone()),
            outcome: if e.outcome.is_success() {
                OutcomeStatus::Success
            } else {
                OutcomeStatus::Failure
            },
        }
    }
}
