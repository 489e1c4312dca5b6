use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::{Cursor, Indexed};
use crate::Timestamp;

/// Which way results run. Both orders sort by `(timestamp, chain, seq)`, which within one
/// chain is chain order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// Oldest first (the default; chain order for one tenant).
    #[default]
    OldestFirst,
    /// Newest first.
    NewestFirst,
}

/// The outcome a query selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeStatus {
    /// `{"status":"success"}`.
    Success,
    /// `{"status":"failure",...}`.
    Failure,
}

impl OutcomeStatus {
    /// The `status` text stored in records and indexed columns.
    pub const fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Success => "success",
            OutcomeStatus::Failure => "failure",
        }
    }

    /// Parses `success` or `failure`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(OutcomeStatus::Success),
            "failure" => Some(OutcomeStatus::Failure),
            _ => None,
        }
    }
}

/// What to read. Every filter that is set must match; see the builder methods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Only this tenant's chain (the chain key; `default` for events without a tenant).
    pub tenant: Option<String>,
    /// Only records at or after this time.
    pub from: Option<Timestamp>,
    /// Only records before this time.
    pub to: Option<Timestamp>,
    /// Only this action, or every action under a prefix written `billing.*`.
    pub action: Option<String>,
    /// Only this actor id.
    pub actor: Option<String>,
    /// Only resources of this type.
    pub resource_type: Option<String>,
    /// Only resources with this id.
    pub resource_id: Option<String>,
    /// Only this outcome.
    pub outcome: Option<OutcomeStatus>,
    /// Sort direction.
    pub order: Order,
    /// At most this many records.
    pub limit: Option<usize>,
    /// Start after this cursor (from a previous [`Page`](super::Page)).
    pub after: Option<Cursor>,
}

impl Query {
    /// A query for every record, oldest first.
    pub fn new() -> Self {
        Query::default()
    }

    /// Only `tenant`'s chain.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Only records in `[from, to)`.
    pub fn between(mut self, from: Timestamp, to: Timestamp) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    /// Only records at or after `from`.
    pub fn from(mut self, from: Timestamp) -> Self {
        self.from = Some(from);
        self
    }

    /// Only records before `to`.
    pub fn to(mut self, to: Timestamp) -> Self {
        self.to = Some(to);
        self
    }

    /// Only `action`, or a prefix written `billing.*` (matching `billing.update` and
    /// `billing.card.update`, not `billing` or `billingx.update`).
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Only records of this actor id.
    pub fn actor(mut self, actor_id: impl Into<String>) -> Self {
        self.actor = Some(actor_id.into());
        self
    }

    /// Only this resource (type and id).
    pub fn resource(mut self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.resource_type = Some(kind.into());
        self.resource_id = Some(id.into());
        self
    }

    /// Only this outcome.
    pub fn outcome(mut self, outcome: OutcomeStatus) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// Sort direction.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// At most `n` records.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Continue after `cursor`.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// True when only tenant and time filters are set, so that the results of one tenant
    /// are a whole contiguous chain segment that verifies on its own.
    pub fn keeps_segments(&self) -> bool {
        self.action.is_none()
            && self.actor.is_none()
            && self.resource_type.is_none()
            && self.resource_id.is_none()
            && self.outcome.is_none()
    }

    /// The action prefix including its final `.` when the action filter is `prefix.*`.
    pub fn action_prefix(&self) -> Option<&str> {
        let pattern = self.action.as_deref()?;
        pattern.strip_suffix('*').filter(|p| p.ends_with('.'))
    }

    /// Whether `action` passes the action filter.
    pub fn action_matches(&self, action: &str) -> bool {
        match (self.action_prefix(), self.action.as_deref()) {
            (_, None) => true,
            (Some(prefix), _) => action.starts_with(prefix),
            (None, Some(exact)) => action == exact,
        }
    }

    /// Whether a record with these indexed members passes the filters other than tenant and
    /// time.
    pub fn matches(&self, indexed: &Indexed) -> bool {
        self.action_matches(&indexed.action)
            && self.actor.as_deref().is_none_or(|a| a == indexed.actor_id)
            && self
                .resource_type
                .as_deref()
                .is_none_or(|t| Some(t) == indexed.resource_type.as_deref())
            && self
                .resource_id
                .as_deref()
                .is_none_or(|i| Some(i) == indexed.resource_id.as_deref())
            && self.outcome.is_none_or(|o| o == indexed.outcome)
    }

    /// Whether a record at `timestamp` lies in the time range.
    pub fn in_time_range(&self, timestamp: Timestamp) -> bool {
        self.from.is_none_or(|f| timestamp >= f) && self.to.is_none_or(|t| timestamp < t)
    }

    /// Whether a record with this sort key comes after the cursor in the query's order.
    pub fn after_cursor(&self, timestamp: Timestamp, chain: &str, seq: u64) -> bool {
        match &self.after {
            None => true,
            Some(c) => {
                let cmp = (timestamp, chain, seq).cmp(&c.key());
                match self.order {
                    Order::OldestFirst => cmp == Ordering::Greater,
                    Order::NewestFirst => cmp == Ordering::Less,
                }
            }
        }
    }
}

impl From<&crate::export::Filter> for Query {
    fn from(f: &crate::export::Filter) -> Self {
        Query {
            tenant: f.tenant.clone(),
            from: f.from,
            to: f.to,
            action: f.action.clone(),
            actor: f.actor.clone(),
            ..Query::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_prefixes_match_whole_segments() {
        let q = Query::new().action("billing.*");
        assert!(q.action_matches("billing.update"));
        assert!(q.action_matches("billing.card.update"));
        assert!(!q.action_matches("billingx.update"));
        assert!(!q.action_matches("billing"));
        assert!(Query::new().action("billing.update").action_matches("billing.update"));
    }
}
