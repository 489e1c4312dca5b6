//! Finding and loading the vocabulary at compile time, once per file content.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use audit_vocab::{ENV_VAR, FILE_NAME, VocabError, Vocabulary};

/// A loaded vocabulary and the absolute path of its file (tracked for rebuilds).
pub struct Loaded {
    pub path: PathBuf,
    pub vocab: Arc<Vocabulary>,
}

/// Where the macro is expanded: the crate's manifest dir and the source file of the call.
pub struct Origin {
    pub manifest_dir: Option<PathBuf>,
    pub source_file: Option<PathBuf>,
}

impl Origin {
    /// The origin of the current macro call.
    pub fn current() -> Self {
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
        let source_file = proc_macro::Span::call_site()
            .local_file()
            .map(|f| match (&manifest_dir, f.is_relative()) {
                (Some(dir), true) => dir.join(f),
                _ => f,
            });
        Origin {
            manifest_dir,
            source_file,
        }
    }

    fn base(&self) -> PathBuf {
        self.manifest_dir
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default()
    }
}

/// Resolves the vocabulary file: the `vocabulary = "..."` attribute (relative to the source
/// file, like `include_str!`), else `$AUDIT_VOCABULARY` (relative to the crate), else
/// `audit.toml` from the crate's manifest dir upwards, else from the source file's directory
/// upwards (for sources outside the crate, as under trybuild).
pub fn locate(origin: &Origin, attribute: Option<&str>) -> Result<PathBuf, VocabError> {
    locate_with(origin, attribute, std::env::var_os(ENV_VAR))
}

/// [`locate`] with the value of `AUDIT_VOCABULARY` given.
fn locate_with(
    origin: &Origin,
    attribute: Option<&str>,
    env: Option<std::ffi::OsString>,
) -> Result<PathBuf, VocabError> {
    if let Some(relative) = attribute {
        let dir = origin
            .source_file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| origin.base());
        return existing(dir.join(relative));
    }
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        return existing(origin.base().join(value));
    }
    let mut searched = Vec::new();
    let mut starts = vec![origin.base()];
    if let Some(dir) = origin.source_file.as_deref().and_then(Path::parent) {
        starts.push(dir.to_path_buf());
    }
    for start in starts {
        match audit_vocab::find_from(&start) {
            Ok(path) => return Ok(path),
            Err(VocabError::NotFound { searched: dirs }) => {
                for dir in dirs {
                    if !searched.contains(&dir) {
                        searched.push(dir);
                    }
                }
            }
            Err(other) => return Err(other),
        }
    }
    Err(VocabError::NotFound { searched })
}

fn existing(path: PathBuf) -> Result<PathBuf, VocabError> {
    let path = normalize(&path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(VocabError::Missing { path })
    }
}

/// Removes `.` and `..` components without touching the file system (symlinks stay).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

type Cache = HashMap<PathBuf, (String, Result<Arc<Vocabulary>, String>)>;

/// Loads (or reuses) the vocabulary at `path`, parsing it again only when its text changed.
pub fn load(path: &Path) -> Result<Loaded, String> {
    static CACHE: Mutex<Option<Cache>> = Mutex::new(None);
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some((cached, result)) = cache.get(&path)
        && *cached == text
    {
        return result.clone().map(|vocab| Loaded {
            path: path.clone(),
            vocab,
        });
    }
    let result = Vocabulary::parse(&text, &path).map(Arc::new).map_err(|e| e.to_string());
    cache.insert(path.clone(), (text, result.clone()));
    result.map(|vocab| Loaded { path, vocab })
}

/// The message for a vocabulary that could not be found.
pub fn not_found_message(error: &VocabError, attribute: Option<&str>) -> String {
    match (error, attribute) {
        (VocabError::Missing { path }, Some(given)) => {
            format!(
                "audit vocabulary file not found: {} (from `vocabulary = \"{given}\"`)",
                path.display()
            )
        }
        (VocabError::Missing { path }, None) => format!(
            "audit vocabulary file not found: {} (from the `{ENV_VAR}` environment variable)",
            path.display()
        ),
        (VocabError::NotFound { searched }, _) => {
            let dirs: Vec<String> = searched.iter().map(|d| d.display().to_string()).collect();
            format!(
                "no `{FILE_NAME}` vocabulary found for this crate; looked in: {}\n\
                 create one listing the allowed actions, or point at it with the `{ENV_VAR}` \
                 environment variable or `vocabulary = \"path\"`",
                dirs.join(", ")
            )
        }
        (other, _) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOCAB: &str = "[actions.\"a.b\"]\ncategory = \"admin\"\ndescription = \"x\"\n";

    fn tree() -> (tempfile::TempDir, Origin) {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("ws/crate/src")).unwrap();
        std::fs::create_dir_all(root.path().join("elsewhere/ui")).unwrap();
        let origin = Origin {
            manifest_dir: Some(root.path().join("ws/crate")),
            source_file: Some(root.path().join("ws/crate/src/lib.rs")),
        };
        (root, origin)
    }

    #[test]
    fn found_from_the_manifest_dir_upwards() {
        let (root, origin) = tree();
        std::fs::write(root.path().join("ws/audit.toml"), VOCAB).unwrap();
        assert_eq!(
            locate_with(&origin, None, None).unwrap(),
            root.path().join("ws/audit.toml")
        );
        let loaded = load(&root.path().join("ws/audit.toml")).unwrap();
        assert!(loaded.vocab.get("a.b").is_some());
    }

    #[test]
    fn then_from_the_source_file_upwards() {
        let (root, mut origin) = tree();
        std::fs::write(root.path().join("elsewhere/audit.toml"), VOCAB).unwrap();
        origin.source_file = Some(root.path().join("elsewhere/ui/case.rs"));
        assert_eq!(
            locate_with(&origin, None, None).unwrap(),
            root.path().join("elsewhere/audit.toml")
        );
    }

    #[test]
    fn the_variable_and_the_attribute_point_elsewhere() {
        let (root, origin) = tree();
        std::fs::write(root.path().join("ws/crate/custom.toml"), VOCAB).unwrap();
        std::fs::write(root.path().join("ws/crate/src/near.toml"), VOCAB).unwrap();
        let env = Some("custom.toml".into());
        assert_eq!(
            locate_with(&origin, None, env).unwrap(),
            root.path().join("ws/crate/custom.toml")
        );
        let attr = locate_with(&origin, Some("../src/./near.toml"), Some("custom.toml".into())).unwrap();
        assert_eq!(
            attr,
            root.path().join("ws/crate/src/near.toml"),
            "the attribute wins, relative to the file"
        );
        let missing = locate_with(&origin, None, Some("nope.toml".into())).unwrap_err();
        let message = not_found_message(&missing, None);
        assert!(
            message.contains("nope.toml (from the `AUDIT_VOCABULARY` environment variable)"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_file_says_where_it_looked() {
        let (root, origin) = tree();
        let error = locate_with(&origin, None, None).unwrap_err();
        let message = not_found_message(&error, None);
        let crate_dir = root.path().join("ws/crate").display().to_string();
        let src_dir = root.path().join("ws/crate/src").display().to_string();
        assert!(
            message.starts_with("no `audit.toml` vocabulary found for this crate; looked in: "),
            "{message}"
        );
        assert!(message.contains(&crate_dir) && message.contains(&src_dir), "{message}");
        assert!(message.contains("AUDIT_VOCABULARY"), "{message}");
    }

    #[test]
    fn a_changed_file_is_parsed_again() {
        let (root, _) = tree();
        let path = root.path().join("audit.toml");
        std::fs::write(&path, VOCAB).unwrap();
        assert!(load(&path).unwrap().vocab.get("c.d").is_none());
        std::fs::write(&path, VOCAB.replace("a.b", "c.d")).unwrap();
        assert!(load(&path).unwrap().vocab.get("c.d").is_some());
        std::fs::write(&path, "[actions.\"X\"]\n").unwrap();
        assert!(load(&path).is_err());
    }
}
