//! Procedural macros of the audit toolkit (`#[audited]`, the model derive). Not built yet:
//! see the macro issue.
