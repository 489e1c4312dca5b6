//! The action an audited operation is recorded under: a typed [`Action`] checked at compile
//! time, or a name checked at run time against the vocabulary compiled into the binary; and
//! the model's default actions, checked when the operation is compiled.

use std::borrow::Cow;
use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::Mutex;

use audit_runtime::{Action, AuditError, AuditEvent, AuditModel, Category, FailureMode, ModelAction};

use crate::error::Error;

/// The action of an audited operation, as [`Audited::action`](crate::Audited::action) takes
/// it: a typed action (`audit::action!("billing.update")`, checked against `audit.toml` when
/// the code compiles) or a name (checked when the operation runs against the vocabulary
/// installed in the process, see [`audit_runtime::install_vocabulary`]).
///
/// ```
/// use audit_diesel::EventAction;
///
/// let typed: EventAction = audit::action!("billing.update").into();
/// let named: EventAction = "billing.update".into();
/// assert_eq!(typed.name(), named.name());
/// assert!(matches!(typed, EventAction::Typed(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventAction {
    /// Checked at compile time by `audit::action!`; its category comes from the vocabulary.
    Typed(Action),
    /// A name: checked at run time. Under
    /// [`FailureMode::Refuse`](audit_runtime::FailureMode::Refuse), an operation whose action
    /// the installed vocabulary does not declare fails with [`Error::Audit`] before it changes
    /// anything; under `Warn` it is recorded and reported loudly.
    Named(Cow<'static, str>),
}

impl EventAction {
    /// The action name.
    pub fn name(&self) -> &str {
        match self {
            EventAction::Typed(action) => action.name(),
            EventAction::Named(name) => name,
        }
    }
}

impl From<Action> for EventAction {
    fn from(action: Action) -> Self {
        EventAction::Typed(action)
    }
}

impl From<&'static str> for EventAction {
    fn from(name: &'static str) -> Self {
        EventAction::Named(Cow::Borrowed(name))
    }
}

impl From<String> for EventAction {
    fn from(name: String) -> Self {
        EventAction::Named(Cow::Owned(name))
    }
}

impl From<Cow<'static, str>> for EventAction {
    fn from(name: Cow<'static, str>) -> Self {
        EventAction::Named(name)
    }
}

/// An action checked as far as it can be before the change is made.
#[derive(Clone, Debug)]
pub(crate) enum Resolved {
    /// From the vocabulary at compile time: emitted without a check.
    Typed(Action),
    /// A name with the category the installed vocabulary gives it (mutation when none is
    /// installed): checked again, cheaply, by the runtime when emitted.
    Named(Cow<'static, str>, Category),
}

impl Resolved {
    pub fn name(&self) -> &str {
        match self {
            Resolved::Typed(action) => action.name(),
            Resolved::Named(name, _) => name,
        }
    }

    pub fn category(&self) -> Category {
        match self {
            Resolved::Typed(action) => action.category(),
            Resolved::Named(_, category) => *category,
        }
    }

    /// An event of this action, timestamped now.
    pub fn event(&self) -> AuditEvent {
        match self {
            Resolved::Typed(action) => AuditEvent::of(*action),
            Resolved::Named(name, category) => AuditEvent::new(name.clone(), *category),
        }
    }
}

/// Checks `action` before the change is made: a typed action needs nothing; a name is looked
/// up in the installed vocabulary (if any), which gives its category. An unknown name is an
/// error under [`FailureMode::Refuse`], so that the change is never made without its event;
/// under `Warn` it goes on, and is reported loudly: by the runtime when the event is emitted,
/// or here when it goes to the outbox (`outbox`), whose relay may run without a vocabulary.
pub(crate) fn resolve(action: EventAction, mode: FailureMode, outbox: bool) -> Result<Resolved, Error> {
    let name = match action {
        EventAction::Typed(action) => return Ok(Resolved::Typed(action)),
        EventAction::Named(name) => name,
    };
    let Some(vocabulary) = audit_runtime::installed_vocabulary() else {
        return Ok(Resolved::Named(name, Category::Mutation));
    };
    if let Some(entry) = vocabulary.get(&name) {
        return Ok(Resolved::Named(name, entry.category));
    }
    let hint = vocabulary
        .suggest(&name)
        .map(|s| format!(": did you mean `{s}`?"))
        .unwrap_or_default();
    let unknown = format!(
        "unknown audit action `{name}`: it is not in the vocabulary compiled into this binary ({}){hint}",
        vocabulary.source()
    );
    if mode == FailureMode::Refuse {
        return Err(Error::Audit(AuditError::UnknownAction {
            action: name.into_owned(),
            message: format!("{unknown}; the audited operation was refused and changed nothing"),
        }));
    }
    if outbox {
        tracing::error!(target: "audit::vocabulary", action = &*name, "{unknown}");
        report_once(&name, &format!("audit: {unknown} (recorded in the outbox anyway)"));
    }
    Ok(Resolved::Named(name, Category::Mutation))
}

/// Prints `message` on stderr the first time `key` comes up in this process.
pub(crate) fn report_once(key: &str, message: &str) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.get_or_insert_with(HashSet::new).insert(key.to_owned()) {
        eprintln!("{message}");
    }
}

/// The action an operation of model `M` is recorded under when none is named: the one the
/// derive found in the vocabulary (typed), or `<resource>.<verb>` (checked at run time).
pub(crate) fn default_action<M: AuditModel>(declared: ModelAction, verb: &str) -> EventAction {
    match declared {
        ModelAction::Checked(action) => EventAction::Typed(action),
        // Unreachable where `Declared` is evaluated first; a name in any case.
        ModelAction::Missing(name) => EventAction::Named(Cow::Borrowed(name)),
        ModelAction::Unchecked => EventAction::Named(Cow::Owned(format!("{}.{verb}", M::RESOURCE_TYPE))),
    }
}

/// Compile-time checks of the default actions of model `M`: evaluating one of these constants
/// (as the operations without an explicit action do) fails to compile when the derive found
/// the default action missing from the vocabulary.
pub(crate) struct Declared<M>(PhantomData<M>);

impl<M: AuditModel> Declared<M> {
    /// `insert` / `insert_all` without an action.
    pub const CREATE: () = require(M::CREATE_ACTION, M::RESOURCE_TYPE, "insert", "create");
    /// `update` / `update_all` without an action.
    pub const UPDATE: () = require(M::UPDATE_ACTION, M::RESOURCE_TYPE, "update", "update");
    /// `delete` / `delete_all` without an action.
    pub const DELETE: () = require(M::DELETE_ACTION, M::RESOURCE_TYPE, "delete", "delete");
}

const fn require(declared: ModelAction, resource: &str, operation: &str, key: &str) {
    let ModelAction::Missing(name) = declared else {
        return;
    };
    let message = Message::new()
        .push("audit-diesel: `")
        .push(name)
        .push("` is not declared in the vocabulary (audit.toml), and this audited ")
        .push(operation)
        .push(" (resource `")
        .push(resource)
        .push("`, no explicit action) would be recorded under it. Declare `")
        .push(name)
        .push("` in audit.toml, or name a declared action: `.action(audit::action!(\"...\")).")
        .push(operation)
        .push("(...)`, or `#[audit(")
        .push(key)
        .push(" = \"...\")]` on the model");
    panic!("{}", message.as_str());
}

/// A message built at compile time (const fns cannot format).
struct Message {
    bytes: [u8; 1024],
    len: usize,
}

impl Message {
    const fn new() -> Self {
        Message {
            bytes: [0; 1024],
            len: 0,
        }
    }

    const fn push(mut self, text: &str) -> Self {
        let text = text.as_bytes();
        let mut i = 0;
        while i < text.len() && self.len < self.bytes.len() {
            self.bytes[self.len] = text[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    const fn as_str(&self) -> &str {
        let (head, _) = self.bytes.split_at(self.len);
        match std::str::from_utf8(head) {
            Ok(text) => text,
            // Cut inside a character: only a very long name gets here.
            Err(_) => "audit-diesel: the default action of this audited operation is not declared in audit.toml",
        }
    }
}
