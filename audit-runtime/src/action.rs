//! Actions checked against the vocabulary: typed ones, checked at compile time by
//! `audit::action!`, and the vocabulary compiled into the binary (`audit::vocabulary!()`),
//! against which actions given as strings are checked when they are emitted.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::FailureMode;
use crate::error::AuditError;
use crate::event::{AuditEvent, Category};

/// An action of the vocabulary with the category the vocabulary gives it. Made by
/// `audit::action!("billing.update")`, which fails to compile on a name `audit.toml` does not
/// declare; an event built from it ([`AuditEvent::of`]) needs no check at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Action {
    name: &'static str,
    category: Category,
}

impl Action {
    /// For `audit::action!` only: an action it found in the vocabulary.
    #[doc(hidden)]
    pub const fn __checked(name: &'static str, category: Category) -> Self {
        Action { name, category }
    }

    /// The action name (`billing.update`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Its category, from the vocabulary.
    pub const fn category(&self) -> Category {
        self.category
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// One action of a [`CompiledVocabulary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VocabularyEntry {
    /// The action name.
    pub name: &'static str,
    /// Its category.
    pub category: Category,
    /// Why and what instead, if it is deprecated.
    pub deprecated: Option<&'static str>,
}

/// The vocabulary (`audit.toml`) compiled into the binary by `audit::vocabulary!()`, sorted
/// by name. Installed with
/// [`AuditLayerBuilder::vocabulary`](crate::AuditLayerBuilder::vocabulary), it checks every
/// action given as a string when its event is emitted.
#[derive(Clone, Copy, Debug)]
pub struct CompiledVocabulary {
    entries: &'static [VocabularyEntry],
    source: &'static str,
}

impl CompiledVocabulary {
    /// For `audit::vocabulary!()` only: `entries` sorted by name, read from `source`.
    #[doc(hidden)]
    pub const fn __new(entries: &'static [VocabularyEntry], source: &'static str) -> Self {
        CompiledVocabulary { entries, source }
    }

    /// The action called `name`.
    pub fn get(&self, name: &str) -> Option<&'static VocabularyEntry> {
        let entries: &'static [VocabularyEntry] = self.entries;
        entries.binary_search_by(|e| e.name.cmp(name)).ok().map(|i| &entries[i])
    }

    /// Every action, by name.
    pub fn entries(&self) -> &'static [VocabularyEntry] {
        self.entries
    }

    /// The file it was compiled from.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The declared action closest to `name`, for "did you mean".
    pub fn suggest(&self, name: &str) -> Option<&'static str> {
        let entries: &'static [VocabularyEntry] = self.entries;
        audit_vocab::did_you_mean(name, entries.iter().map(|e| e.name))
    }
}

static INSTALLED: OnceLock<CompiledVocabulary> = OnceLock::new();
static UNKNOWN: AtomicU64 = AtomicU64::new(0);

/// Installs the vocabulary string actions are checked against, once per process; returns
/// false when one was installed already (the first one stays).
pub fn install_vocabulary(vocabulary: CompiledVocabulary) -> bool {
    INSTALLED.set(vocabulary).is_ok()
}

/// The vocabulary installed in this process, if any.
pub fn installed_vocabulary() -> Option<&'static CompiledVocabulary> {
    INSTALLED.get()
}

/// How many events named an action the installed vocabulary does not declare.
pub fn unknown_action_count() -> u64 {
    UNKNOWN.load(Ordering::Relaxed)
}

/// Checks an event whose action was given as a string against the installed vocabulary: an
/// unknown action is reported loudly and, under [`FailureMode::Refuse`], refused; a category
/// that disagrees with the vocabulary's is corrected to it (and reported once per action).
pub(crate) fn check(event: &mut AuditEvent, mode: FailureMode) -> Result<(), AuditError> {
    let Some(vocabulary) = installed_vocabulary() else {
        return Ok(());
    };
    match vocabulary.get(&event.action) {
        Some(entry) => {
            if entry.category != event.category {
                report_once(format!(
                    "audit action `{}` was given category `{}`, but the vocabulary ({}) says `{}`: recorded as `{}`",
                    entry.name,
                    event.category,
                    vocabulary.source(),
                    entry.category,
                    entry.category
                ));
                event.category = entry.category;
            }
            Ok(())
        }
        None => {
            UNKNOWN.fetch_add(1, Ordering::Relaxed);
            let hint = vocabulary
                .suggest(&event.action)
                .map(|s| format!(": did you mean `{s}`?"))
                .unwrap_or_default();
            let message = format!(
                "unknown audit action `{}`: it is not in the vocabulary compiled into this binary ({}){hint}",
                event.action,
                vocabulary.source()
            );
            tracing::error!(target: "audit::vocabulary", action = &*event.action, "{message}");
            match mode {
                FailureMode::Warn => {
                    report_once(format!("{message} (recorded anyway)"));
                    Ok(())
                }
                FailureMode::Refuse => Err(AuditError::UnknownAction {
                    action: event.action.to_string(),
                    message,
                }),
            }
        }
    }
}

/// Prints a message on stderr the first time it comes up.
fn report_once(message: String) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.get_or_insert_with(HashSet::new).insert(message.clone()) {
        eprintln!("audit: {message}");
    }
}
