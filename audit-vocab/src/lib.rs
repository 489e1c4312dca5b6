//! The controlled action vocabulary of the audit toolkit (Contract 3): the `audit.toml` file
//! that lists every action an application may record, with its category and a description.
//!
//! The `#[audited]` macro reads it at compile time (so a misspelled action is a compile
//! error), and `audit vocab` renders it as a catalogue for auditors.
//!
//! ```
//! use audit_vocab::{Category, Vocabulary};
//!
//! let text = r#"
//! include_standard = true
//!
//! [actions."billing.update"]
//! category = "mutation"
//! description = "A customer's billing details changed"
//!
//! [actions."billing.legacy_update"]
//! category = "mutation"
//! description = "Old name of billing.update"
//! deprecated = true
//! replaced_by = "billing.update"
//! "#;
//! let vocab = Vocabulary::parse(text, "audit.toml")?;
//!
//! let action = vocab.get("billing.update").expect("declared");
//! assert_eq!(action.category, Category::Mutation);
//! assert!(vocab.get("user.login").is_some_and(|a| a.standard)); // from the standard set
//! assert_eq!(vocab.suggest("biling.update"), Some("billing.update"));
//!
//! let markdown = vocab.render_markdown();
//! assert!(markdown.contains("| `billing.update` |"));
//! # Ok::<(), audit_vocab::VocabError>(())
//! ```
//!
//! The file format:
//!
//! ```toml
//! include_standard = true          # optional: the built-in always-log set (see `standard_actions`)
//!
//! [actions."billing.update"]
//! category = "mutation"            # authentication | authorization | data_access | mutation | admin
//! description = "A customer's billing details changed"
//!
//! [actions."billing.legacy_update"]
//! category = "mutation"
//! description = "Old name of billing.update"
//! deprecated = "use billing.update"  # or `true`; using it compiles with a warning
//! replaced_by = "billing.update"     # optional, must be a declared action
//! ```

mod catalogue;
mod error;
mod parse;
mod standard;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use error::{Problem, VocabError};
pub use standard::{STANDARD_ACTIONS, StandardAction};

/// The file name looked for: `audit.toml`.
pub const FILE_NAME: &str = "audit.toml";

/// The environment variable that points at the vocabulary file when it is not found by
/// searching upwards (a path, relative to the crate's `CARGO_MANIFEST_DIR` or absolute).
pub const ENV_VAR: &str = "AUDIT_VOCABULARY";

/// The category of an action: fixed per action in `audit.toml`, and written in every record
/// under the same names (`data_access`). The runtime re-exports this one definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Logins, logouts, MFA, password changes.
    Authentication,
    /// Permission checks, role grants and revocations.
    Authorization,
    /// Reads of sensitive data.
    DataAccess,
    /// Creates, updates and deletes.
    Mutation,
    /// Administrative operations (configuration, impersonation, exports).
    Admin,
}

impl Category {
    /// Every category, in documentation order.
    pub const ALL: [Category; 5] = [
        Category::Authentication,
        Category::Authorization,
        Category::DataAccess,
        Category::Mutation,
        Category::Admin,
    ];

    /// The name used in `audit.toml` and in records (`data_access`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Authentication => "authentication",
            Category::Authorization => "authorization",
            Category::DataAccess => "data_access",
            Category::Mutation => "mutation",
            Category::Admin => "admin",
        }
    }

    /// The Rust variant name (`DataAccess`), as used by `audit::Category`.
    pub const fn variant_name(self) -> &'static str {
        match self {
            Category::Authentication => "Authentication",
            Category::Authorization => "Authorization",
            Category::DataAccess => "DataAccess",
            Category::Mutation => "Mutation",
            Category::Admin => "Admin",
        }
    }

    /// A heading for catalogues.
    pub const fn title(self) -> &'static str {
        match self {
            Category::Authentication => "Authentication",
            Category::Authorization => "Authorization",
            Category::DataAccess => "Data access",
            Category::Mutation => "Mutation",
            Category::Admin => "Administration",
        }
    }

    /// Parses the name used in `audit.toml`.
    pub fn parse(name: &str) -> Option<Self> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// The action name (`billing.update`).
    pub name: String,
    /// Its category, recorded in every event of this action.
    pub category: Category,
    /// What the action means, for auditors.
    pub description: String,
    /// Set when the action is deprecated: using it compiles with a warning.
    pub deprecated: Option<Deprecation>,
    /// True when the action comes from the standard set (`include_standard = true`).
    pub standard: bool,
    /// The 1-based line of its declaration in the file (`None` for standard actions).
    pub line: Option<usize>,
}

/// Why and in favour of what an action is deprecated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deprecation {
    /// The note given with `deprecated = "..."`, if any.
    pub note: Option<String>,
    /// The action to use instead (`replaced_by`), if any.
    pub replaced_by: Option<String>,
}

impl Deprecation {
    /// The warning text shown where the action is used.
    pub fn message(&self, action: &str) -> String {
        let mut message = format!("audit action `{action}` is deprecated");
        if let Some(note) = &self.note {
            message.push_str(": ");
            message.push_str(note);
        }
        if let Some(replacement) = &self.replaced_by {
            message.push_str(&format!(" (use `{replacement}` instead)"));
        }
        message
    }
}

/// A parsed and validated vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    path: PathBuf,
    include_standard: bool,
    actions: BTreeMap<String, Action>,
}

impl Vocabulary {
    /// Reads and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, VocabError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => VocabError::Missing {
                path: path.to_path_buf(),
            },
            _ => VocabError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
        Self::parse(&text, path)
    }

    /// Finds the file from `dir` upwards (see [`find_from`]) and loads it.
    pub fn load_from(dir: impl AsRef<Path>) -> Result<Self, VocabError> {
        Self::load(find_from(dir)?)
    }

    /// Parses and validates `text`; `path` names the file in error messages. Every problem
    /// of the file is reported, not only the first.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Self, VocabError> {
        parse::parse(text, path.as_ref())
    }

    /// A vocabulary of the standard set alone, as if the file said only
    /// `include_standard = true`.
    pub fn standard() -> Self {
        let mut vocab = Vocabulary {
            path: PathBuf::new(),
            include_standard: true,
            actions: BTreeMap::new(),
        };
        vocab.add_standard();
        vocab
    }

    fn add_standard(&mut self) {
        for s in STANDARD_ACTIONS {
            self.actions.insert(s.name.to_owned(), s.to_action());
        }
    }

    /// The file this vocabulary was read from (empty for [`Vocabulary::standard`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file switched on the standard set.
    pub fn includes_standard(&self) -> bool {
        self.include_standard
    }

    /// The action called `name`, if declared.
    pub fn get(&self, name: &str) -> Option<&Action> {
        self.actions.get(name)
    }

    /// Every action, sorted by name.
    pub fn actions(&self) -> impl ExactSizeIterator<Item = &Action> {
        self.actions.values()
    }

    /// Number of actions.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// True when no action is declared.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The declared action closest to a misspelled `name`, if one is close enough to be
    /// what was meant.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        did_you_mean(name, self.actions.keys().map(String::as_str))
    }

    /// The catalogue as a Markdown document, grouped by category.
    pub fn render_markdown(&self) -> String {
        catalogue::markdown(self)
    }

    /// The catalogue as CSV (`action,category,description,deprecated,replaced_by,standard`),
    /// with cells that a spreadsheet would run as formulas neutralised.
    pub fn render_csv(&self) -> String {
        catalogue::csv(self)
    }

    /// The catalogue as a pretty-printed JSON document.
    pub fn render_json(&self) -> String {
        catalogue::json(self)
    }
}

/// Looks for `audit.toml` in `dir` and each of its ancestors, nearest first. The error
/// lists every directory searched.
pub fn find_from(dir: impl AsRef<Path>) -> Result<PathBuf, VocabError> {
    let mut searched = Vec::new();
    for ancestor in dir.as_ref().ancestors() {
        let candidate = ancestor.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        searched.push(ancestor.to_path_buf());
    }
    Err(VocabError::NotFound { searched })
}

/// Checks the action name rule: lowercase dotted segments, at least two, each
/// `[a-z][a-z0-9_]*`. The error says what is wrong.
pub fn validate_action_name(name: &str) -> Result<(), String> {
    const RULE: &str = "action names are lowercase dotted segments, at least two, each `[a-z][a-z0-9_]*` \
                        (like `billing.update`)";
    if name.is_empty() {
        return Err(format!("the action name is empty; {RULE}"));
    }
    let segments: Vec<&str> = name.split('.').collect();
    if segments.len() < 2 {
        return Err(format!("`{name}` has a single segment; {RULE}"));
    }
    for segment in &segments {
        let mut chars = segment.chars();
        match chars.next() {
            None => return Err(format!("`{name}` has an empty segment; {RULE}")),
            Some(c) if !c.is_ascii_lowercase() => {
                return Err(format!(
                    "segment `{segment}` of `{name}` does not start with a lowercase letter; {RULE}"
                ));
            }
            Some(_) => {}
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
            return Err(format!("`{name}` contains `{bad}`; {RULE}"));
        }
    }
    Ok(())
}

/// The candidate closest to `word`, if it is close enough to be a likely misspelling.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 4).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, c)| (distance, c.len()))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests;
