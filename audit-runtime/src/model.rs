//! Models whose changes are audited: the resource type, the id, and the before/after
//! snapshots of a record, with sensitive fields redacted at capture.
//!
//! Implement [`AuditModel`] with `#[derive(AuditModel)]` from the `audit` crate:
//!
//! ```
//! use audit_runtime::{AuditEvent, AuditModel, Category, REDACTED};
//!
//! struct Customer { id: u64, name: String, ssn: String }
//!
//! // What `#[derive(AuditModel)]` with `#[audit(redact)]` on `ssn` generates, by hand:
//! impl AuditModel for Customer {
//!     const RESOURCE_TYPE: &'static str = "customer";
//!     const REDACTED_FIELDS: &'static [&'static str] = &["ssn"];
//!     fn audit_id(&self) -> String { self.id.to_string() }
//!     fn audit_snapshot(&self) -> serde_json::Value {
//!         serde_json::json!({ "id": self.id, "name": self.name, "ssn": REDACTED })
//!     }
//! }
//!
//! let before = Customer { id: 7, name: "Ada".into(), ssn: "078-05-1120".into() };
//! let after = Customer { id: 7, name: "Ada L.".into(), ssn: before.ssn.clone() };
//! let event = AuditEvent::new("customer.update", Category::Mutation).model_change(Some(&before), Some(&after));
//! assert_eq!(after.audit_resource().kind, "customer");
//! assert_eq!(after.audit_snapshot()["ssn"], "[redacted]");
//! # drop(event);
//! ```

use crate::event::{AuditEvent, Changes, Resource};

/// A record type whose creates, updates and deletes are audited with before/after state.
pub trait AuditModel {
    /// The resource type recorded in events (`customer`).
    const RESOURCE_TYPE: &'static str;

    /// Names of the fields written as [`REDACTED`](crate::REDACTED) in snapshots.
    const REDACTED_FIELDS: &'static [&'static str] = &[];

    /// Names of the fields left out of snapshots.
    const SKIPPED_FIELDS: &'static [&'static str] = &[];

    /// The resource id of this record.
    fn audit_id(&self) -> String;

    /// The state of this record for `changes.before` / `changes.after`: a JSON object with
    /// redacted fields replaced by [`REDACTED`](crate::REDACTED) and skipped fields left out.
    fn audit_snapshot(&self) -> serde_json::Value;

    /// The resource (type and id) of this record.
    fn audit_resource(&self) -> Resource {
        Resource::new(Self::RESOURCE_TYPE, self.audit_id())
    }
}

impl<M: AuditModel + ?Sized> AuditModel for &M {
    const RESOURCE_TYPE: &'static str = M::RESOURCE_TYPE;
    const REDACTED_FIELDS: &'static [&'static str] = M::REDACTED_FIELDS;
    const SKIPPED_FIELDS: &'static [&'static str] = M::SKIPPED_FIELDS;

    fn audit_id(&self) -> String {
        (**self).audit_id()
    }

    fn audit_snapshot(&self) -> serde_json::Value {
        (**self).audit_snapshot()
    }
}

impl AuditEvent {
    /// Sets the resource to `model`'s type and id.
    pub fn model<M: AuditModel + ?Sized>(mut self, model: &M) -> Self {
        self.resource = Some(model.audit_resource());
        self
    }

    /// Records a change of a model: the resource (from `after`, or `before` for a delete) and
    /// the redacted snapshots before and after (`None` before a create, after a delete).
    pub fn model_change<M: AuditModel + ?Sized>(mut self, before: Option<&M>, after: Option<&M>) -> Self {
        if let Some(model) = after.or(before) {
            self.resource = Some(model.audit_resource());
        }
        self.with_changes(Changes {
            before: before.map(AuditModel::audit_snapshot),
            after: after.map(AuditModel::audit_snapshot),
            fields: Vec::new(),
        })
    }
}
