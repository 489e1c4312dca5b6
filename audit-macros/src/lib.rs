//! Procedural macros of the audit toolkit: `#[audited(...)]` on fns and methods, and
//! `#[derive(AuditModel)]` for records whose changes are audited. Use them through the
//! `audit` crate, whose hidden support module the expansions refer to:
//!
//! ```
//! use audit::{AuditModel, audited};
//!
//! #[derive(Debug)]
//! struct BillingError(String);
//! impl std::fmt::Display for BillingError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         f.write_str(&self.0)
//!     }
//! }
//!
//! /// Changes a customer's billing plan.
//! #[audited(action = "billing.update", resource = "customer", id = customer_id)]
//! fn update_billing(customer_id: &str, plan: &str) -> Result<(), BillingError> {
//!     if plan.is_empty() {
//!         return Err(BillingError("no plan given".into()));
//!     }
//!     Ok(())
//! }
//!
//! #[derive(AuditModel, serde::Serialize)]
//! #[audit(resource = "customer")]
//! struct Customer {
//!     id: u64,
//!     name: String,
//!     #[audit(redact)]
//!     tax_id: String,
//! }
//!
//! # fn main() {
//! // With no audit sink installed, the events are reported on stderr (failure mode Warn).
//! assert!(update_billing("cust_1", "pro").is_ok());
//! assert!(update_billing("cust_1", "").is_err());
//!
//! let customer = Customer { id: 7, name: "Ada".into(), tax_id: "DE123".into() };
//! // A keyed fingerprint: a change of the tax id shows, the tax id never does.
//! assert_eq!(customer.audit_snapshot()["tax_id"], audit::fingerprint("DE123"));
//! # }
//! ```
//!
//! The actions come from the vocabulary file `audit.toml` (see the `audit-vocab` crate),
//! checked at compile time.

mod actions;
mod errors;
mod expand;
mod model;
mod parse;
mod validate;
mod vocab;

use proc_macro::TokenStream;
use quote::quote;

/// Records an audit event for every call of a fn or method: its action, category, actor,
/// resource, outcome and context, hash-chained by the runtime.
///
/// ```
/// # use audit::audited;
/// # #[derive(Debug)] struct Error;
/// # impl std::fmt::Display for Error { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("e") } }
/// # struct Request { customer_id: String }
/// #[audited(action = "customer_record.read", resource = "customer", id = req.customer_id)]
/// async fn show_customer(req: &Request) -> Result<String, Error> {
///     Ok(format!("customer {}", req.customer_id))
/// }
/// ```
///
/// # Arguments
///
/// Only `action` is required. Values are expressions over the fn's arguments (and `self`),
/// evaluated before the body runs, or `return...`, read from the returned value (the `Ok`
/// value of a `Result`) after the body returned. **Arguments are never recorded unless named
/// here**, so no personal data reaches the log by accident.
///
/// | argument | meaning | example |
/// |---|---|---|
/// | `action = "..."` | the action, declared in `audit.toml`; its category comes from there | `action = "billing.update"` |
/// | `resource = "..."` | the type of the resource acted upon (needs `id`) | `resource = "customer"` |
/// | `id = ...` | the resource id: anything `Display` | `id = customer_id`, `id = req.customer.id`, `id = return.id` |
/// | `actor = ...` | an `audit::Actor`, instead of the ambient one | `actor = Actor::system("billing-cron")`, `actor = return.actor` |
/// | `tenant = ...` | the tenant (and chain), instead of the ambient one: anything `Display` | `tenant = req.tenant_id` |
/// | `context(k = v, ...)` | extra context members: `ip`, `user_agent`, `request_id`, `session_id`, `trace_id` or any key; values `Display` | `context(request_id = req.id, "plan" = plan)` |
/// | `reason = ...` | the failure reason of an `Err`, instead of its `Display`: a text, or a fn of `&E` returning something `Display` | `reason = "payment declined"`, `reason = \|e: &PayError\| e.code()` |
/// | `fail_closed` | refuse to run the body when no healthy audit sink is installed, whatever the global failure mode | `fail_closed` |
/// | `fail_open` | never refuse: run the body and report a lost event loudly, whatever the global failure mode | `fail_open` |
/// | `vocabulary = "..."` | the vocabulary file, relative to this source file (like `include_str!`) | `vocabulary = "../../audit.toml"` |
///
/// # Outcome
///
/// - A fn returning `Result` (any type whose last path segment is `Result`, so `io::Result`
///   and `anyhow::Result` too): `Ok` is a success, `Err(e)` a failure whose reason is
///   `e.to_string()` unless `reason` says otherwise.
/// - Any other fn: returning is a success.
/// - A panic is recorded as a failure (`panicked`, never the panic message), then unwinds on.
/// - An async fn whose future is dropped after it started and before it completed (a timeout,
///   a `select!`, a client that went away) is recorded as a failure
///   (`cancelled: the future was dropped before it completed`), under the ambient scope it
///   started in. A future dropped before its first poll ran nothing and records nothing.
///
/// The event is stamped when the call ends. Actor, tenant and context not given here come
/// from the ambient `audit::AuditScope` and the enclosing `tracing` spans.
///
/// # Fail-closed
///
/// When the failure mode is Refuse (globally with `audit::set_failure_mode`, or for this fn
/// with `fail_closed`) and no healthy audit sink is installed, **the body does not run**:
///
/// - with `fail_closed`, a fn returning `Result<T, E>` returns `Err(E::from(AuditError::NoSink))`;
///   `E: From<audit::AuditError>` is checked at compile time;
/// - under the global Refuse mode, a fn returning `Result<T, E>` where
///   `E: From<audit::AuditError>` returns that error; the others panic with a message naming
///   the action (the panic is the only way such a fn can refuse);
/// - any other fn (no `Result`) panics, with either setting.
///
/// Fns that never ask for refusal need no `From<AuditError>` in their signatures. The refused
/// attempt is reported loudly by the runtime (stderr, `audit::undelivered`, the counter). If
/// the sink fails after the body ran, the result is returned unchanged and the lost event is
/// reported the same way: the action has happened.
///
/// # Supported fns
///
/// Sync and `async` fns, inherent and trait methods (`&self`, `&mut self`, `self`), default
/// methods and `async fn` in traits, generic fns, fns returning `impl Trait`. The signature,
/// attributes and doc comments are kept as written; the body runs in a closure (or an `async`
/// block) typed with the fn's return type, so `return`, `?` and type errors behave as before.
/// `const fn`s cannot be audited. A fn that is not `async` but returns a future
/// (`-> impl Future`, or a method already rewritten by `#[async_trait]`) is recorded when the
/// future is created, not when it completes: write it as an `async fn`.
///
/// # Vocabulary
///
/// `audit.toml` is found from the crate's `CARGO_MANIFEST_DIR` upwards (then from the source
/// file's directory upwards); the `AUDIT_VOCABULARY` environment variable (a path relative to
/// the crate) or `vocabulary = "..."` point elsewhere. Cargo rebuilds when the file or the
/// variable changes. An unknown action is a compile error on the literal with a "did you
/// mean" suggestion; a deprecated one compiles with a warning.
#[proc_macro_attribute]
pub fn audited(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let mut errors = errors::Errors::default();
    let args = parse::args(attr.into(), &mut errors);
    let mut is_fn = false;
    let plan = match parse::target(item.clone()) {
        parse::Target::Fn(func) => {
            is_fn = true;
            validate::validate(args, *func, &vocab::Origin::current(), &mut errors)
        }
        parse::Target::Other(e) => {
            errors.push(e);
            None
        }
    };
    match (plan, errors.into_error()) {
        (Some(plan), None) => expand::expand(plan).into(),
        (_, error) => {
            // The fn as written, so that the rest of the crate still type-checks; the
            // arguments the attribute named are not reported as unused on top of its errors.
            let error = error.map(|e| e.to_compile_error());
            let allow = is_fn.then(|| quote!(#[allow(unused_variables)]));
            quote!(#error #allow #item).into()
        }
    }
}

/// An action of the vocabulary as a typed `audit::Action`, with the category `audit.toml`
/// gives it: an unknown name is a compile error (with a "did you mean"), a deprecated one a
/// warning. Events built from it need no check at run time.
///
/// ```
/// let login = audit::action!("user.login");
/// assert_eq!(login.category(), audit::Category::Authentication);
/// let event = audit::AuditEvent::of(login).failure("invalid password");
/// # drop(event);
/// ```
#[proc_macro]
pub fn action(input: TokenStream) -> TokenStream {
    match syn::parse::<actions::ActionArg>(input) {
        Ok(arg) => actions::action(arg, &vocab::Origin::current()).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The crate's vocabulary (`audit.toml`) compiled into the binary, as an
/// `audit::CompiledVocabulary`: install it
/// (`AuditLayer::builder(store).vocabulary(audit::vocabulary!())`) and every action given as
/// a string (`AuditEvent::new("...", ..)`, audit-diesel's defaults) is checked against it when
/// its event is emitted.
///
/// ```
/// let vocabulary = audit::vocabulary!();
/// assert!(vocabulary.get("billing.update").is_some());
/// assert_eq!(vocabulary.suggest("biling.update"), Some("billing.update"));
/// ```
#[proc_macro]
pub fn vocabulary(input: TokenStream) -> TokenStream {
    actions::vocabulary(input.into(), &vocab::Origin::current()).into()
}

/// Implements `audit::AuditModel` for a struct: its resource type, its id, and redacted
/// before/after snapshots for `changes`.
///
/// ```
/// use audit::AuditModel;
///
/// #[derive(AuditModel, serde::Serialize)]
/// #[audit(resource = "customer")]      // default: the struct name in snake_case
/// struct Customer {
///     #[audit(id)]                     // default: the field named `id`
///     customer_id: String,
///     #[audit(rename = "full_name")]   // its key in snapshots
///     name: String,
///     #[audit(redact)]                 // written as a keyed fingerprint, never the value
///     ssn: String,
///     #[audit(skip)]                   // left out of snapshots
///     cached_html: String,
/// }
///
/// let c = Customer { customer_id: "cust_1".into(), name: "Ada".into(), ssn: "078-05-1120".into(), cached_html: String::new() };
/// assert_eq!(Customer::RESOURCE_TYPE, "customer");
/// assert_eq!(c.audit_id(), "cust_1");
/// assert_eq!(c.audit_snapshot(), serde_json::json!({"customer_id": "cust_1", "full_name": "Ada", "ssn": audit::fingerprint("078-05-1120")}));
/// ```
///
/// The struct's `#[audit(...)]` may name the actions of its changes (`create = "..."`,
/// `update = "..."`, `delete = "..."`, or `false`); by default they are `<resource>.create`
/// and so on, looked up in `audit.toml` at compile time (see `audit::ModelAction`).
///
/// Every field that is not skipped must implement `serde::Serialize` (a redacted one for its
/// fingerprint, over its JSON text); the id
/// field must implement `Display`.
#[proc_macro_derive(AuditModel, attributes(audit))]
pub fn derive_audit_model(input: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(input) {
        Ok(input) => model::derive(input).into(),
        Err(e) => e.to_compile_error().into(),
    }
}
