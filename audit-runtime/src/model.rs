//! Models whose changes are audited: the resource type, the id, and the before/after
//! snapshots of a record, with sensitive fields redacted at capture.
//!
//! Implement [`AuditModel`] with `#[derive(AuditModel)]` from the `audit` crate:
//!
//! ```
//! use audit_runtime::{AuditEvent, AuditModel, Category};
//!
//! struct Customer { id: u64, name: String, ssn: String }
//!
//! // What `#[derive(AuditModel)]` with `#[audit(redact)]` on `ssn` generates, by hand:
//! impl AuditModel for Customer {
//!     const RESOURCE_TYPE: &'static str = "customer";
//!     const REDACTED_FIELDS: &'static [&'static str] = &["ssn"];
//!     fn audit_id(&self) -> String { self.id.to_string() }
//!     fn audit_snapshot(&self) -> serde_json::Value {
//!         serde_json::json!({ "id": self.id, "name": self.name, "ssn": audit_runtime::fingerprint(&self.ssn) })
//!     }
//! }
//!
//! let before = Customer { id: 7, name: "Ada".into(), ssn: "078-05-1120".into() };
//! let after = Customer { id: 7, name: "Ada L.".into(), ssn: before.ssn.clone() };
//! let event = AuditEvent::new("customer.update", Category::Mutation).model_change(Some(&before), Some(&after));
//! assert_eq!(after.audit_resource().kind, "customer");
//! // The SSN is never written; its fingerprint shows whether it changed.
//! assert!(after.audit_snapshot()["ssn"].as_str().unwrap().starts_with("[redacted:"));
//! assert!(!after.audit_snapshot().to_string().contains("078-05-1120"));
//! # drop(event);
//! ```

use crate::action::Action;
use crate::event::{AuditEvent, Changes, Resource};

/// The action of one kind of change of a model (create, update, delete), as
/// `#[derive(AuditModel)]` found it in the vocabulary at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelAction {
    /// Declared in the vocabulary (the default `<resource>.update`, or the one the model names).
    Checked(Action),
    /// Not declared: the default name the vocabulary lacks. An integration that would record
    /// it (audit-diesel) refuses to compile that operation without an action named explicitly.
    Missing(&'static str),
    /// Not checked (a hand-written impl): the default `<resource>.<operation>` name, checked
    /// at run time against the installed vocabulary.
    Unchecked,
}

/// A record type whose creates, updates and deletes are audited with before/after state.
pub trait AuditModel {
    /// The resource type recorded in events (`customer`).
    const RESOURCE_TYPE: &'static str;

    /// Names of the redacted fields: written in snapshots as a keyed fingerprint
    /// ([`fingerprint`](crate::fingerprint)), never their value.
    const REDACTED_FIELDS: &'static [&'static str] = &[];

    /// Names of the fields left out of snapshots.
    const SKIPPED_FIELDS: &'static [&'static str] = &[];

    /// The action recording a create of this model.
    const CREATE_ACTION: ModelAction = ModelAction::Unchecked;

    /// The action recording an update of this model.
    const UPDATE_ACTION: ModelAction = ModelAction::Unchecked;

    /// The action recording a delete of this model.
    const DELETE_ACTION: ModelAction = ModelAction::Unchecked;

    /// The resource id of this record.
    fn audit_id(&self) -> String;

    /// The state of this record for `changes.before` / `changes.after`: a JSON object with
    /// redacted fields replaced by their [`fingerprint`](crate::fingerprint) and skipped
    /// fields left out.
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
    const CREATE_ACTION: ModelAction = M::CREATE_ACTION;
    const UPDATE_ACTION: ModelAction = M::UPDATE_ACTION;
    const DELETE_ACTION: ModelAction = M::DELETE_ACTION;

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
