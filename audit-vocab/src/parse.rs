//! Parsing and validating `audit.toml`, collecting every problem with its position.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::{Action, Category, Deprecation, Problem, STANDARD_ACTIONS, VocabError, Vocabulary, did_you_mean};

const TOP_KEYS: &[&str] = &["include_standard", "actions"];
const ACTION_KEYS: &[&str] = &["category", "description", "deprecated", "replaced_by"];

struct Problems {
    found: Vec<(usize, String)>,
}

impl Problems {
    fn add(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.found.push((span.start, message.into()));
    }
}

pub(crate) fn parse(text: &str, path: &Path) -> Result<Vocabulary, VocabError> {
    let mut problems = Problems { found: Vec::new() };
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        // The document was only partly understood: report what is wrong with its syntax, not
        // the follow-on problems of a guessed reading.
        let mut duplicate_tables = Vec::new();
        for error in &errors {
            let at = error.span().unwrap_or(0..0);
            let table = text[..at.start.min(text.len())].rfind("\n[").map_or(0, |i| i + 1);
            if duplicate_tables.contains(&table) {
                continue; // the keys of a table already reported as a duplicate
            }
            let (message, is_table) = rephrase_toml_error(text, error);
            if is_table {
                duplicate_tables.push(table);
            }
            problems.add(at, message);
        }
        return Err(finish(text, path, problems));
    }

    let mut include_standard = false;
    let mut declared: Vec<(&Spanned<toml::de::DeString<'_>>, &Spanned<DeValue<'_>>)> = Vec::new();
    for (key, value) in root.get_ref().iter() {
        match key.get_ref().as_ref() {
            "include_standard" => match value.get_ref() {
                DeValue::Boolean(b) => include_standard = *b,
                _ => problems.add(value.span(), "`include_standard` must be `true` or `false`"),
            },
            "actions" => match value.get_ref() {
                DeValue::Table(table) => declared.extend(table.iter()),
                _ => problems.add(
                    value.span(),
                    "`actions` must be a table of actions: `[actions.\"billing.update\"]` with `category` and `description`",
                ),
            },
            other => problems.add(key.span(), unknown_key(other, TOP_KEYS, "at the top level")),
        }
    }

    let mut actions: BTreeMap<String, Action> = BTreeMap::new();
    let mut replacements: Vec<(String, Range<usize>, String)> = Vec::new();
    for (key, value) in declared {
        let name = key.get_ref().as_ref();
        if let Some(action) = parse_action(text, name, key.span(), value, &mut problems, &mut replacements) {
            if include_standard && STANDARD_ACTIONS.iter().any(|s| s.name == name) {
                problems.add(
                    key.span(),
                    format!(
                        "duplicate action `{name}`: it is already in the standard set (`include_standard = true`); \
                         remove this declaration"
                    ),
                );
                continue;
            }
            actions.insert(name.to_owned(), action);
        }
    }
    if include_standard {
        for s in STANDARD_ACTIONS {
            actions.entry(s.name.to_owned()).or_insert_with(|| s.to_action());
        }
    }
    for (action, span, replacement) in replacements {
        if !actions.contains_key(&replacement) {
            let hint = did_you_mean(&replacement, actions.keys().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            problems.add(
                span,
                format!("`replaced_by` of `{action}` names `{replacement}`, which is not declared{hint}"),
            );
        } else if let Some(deprecation) = actions.get_mut(&action).and_then(|a| a.deprecated.as_mut()) {
            deprecation.replaced_by = Some(replacement);
        }
    }

    if problems.found.is_empty() {
        return Ok(Vocabulary {
            path: path.to_path_buf(),
            include_standard,
            actions,
        });
    }
    Err(finish(text, path, problems))
}

fn finish(text: &str, path: &Path, mut problems: Problems) -> VocabError {
    problems.found.sort_by_key(|(offset, _)| *offset);
    problems.found.dedup();
    let index = LineIndex::new(text);
    let problems = problems
        .found
        .into_iter()
        .map(|(offset, message)| {
            let (line, column) = index.position(text, offset);
            Problem { line, column, message }
        })
        .collect();
    VocabError::Invalid {
        path: path.to_path_buf(),
        problems,
    }
}

fn parse_action(
    text: &str,
    name: &str,
    name_span: Range<usize>,
    value: &Spanned<DeValue<'_>>,
    problems: &mut Problems,
    replacements: &mut Vec<(String, Range<usize>, String)>,
) -> Option<Action> {
    let table = match value.get_ref() {
        DeValue::Table(table) => Some(table),
        _ => None,
    };
    let is_nested = table.is_some_and(|table| {
        !table.is_empty()
            && table.get("category").is_none()
            && table.iter().all(|(_, v)| matches!(v.get_ref(), DeValue::Table(_)))
    });
    if let (true, Some(table)) = (is_nested, table) {
        let inner = table
            .iter()
            .next()
            .map(|(k, _)| k.get_ref().to_string())
            .unwrap_or_default();
        problems.add(
            name_span,
            format!(
                "`{name}` holds tables, not an action: an action name with dots must be quoted, as in \
                 `[actions.\"{name}.{inner}\"]`"
            ),
        );
        return None;
    }
    let mut ok = true;
    if let Err(why) = crate::validate_action_name(name) {
        problems.add(name_span.clone(), format!("bad action name: {why}"));
        ok = false;
    }
    let Some(table) = table else {
        problems.add(
            value.span(),
            format!("action `{name}` must be a table with `category` and `description`"),
        );
        return None;
    };
    let mut category = None;
    let mut description = None;
    let mut deprecated = None;
    for (key, v) in table.iter() {
        match key.get_ref().as_ref() {
            "category" => match v.get_ref() {
                DeValue::String(c) => match Category::parse(c) {
                    Some(c) => category = Some(c),
                    None => {
                        let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                        let hint = did_you_mean(c, names.iter().copied())
                            .map(|s| format!("did you mean `{s}`? "))
                            .unwrap_or_default();
                        problems.add(
                            v.span(),
                            format!(
                                "unknown category `{c}` for `{name}`; {hint}expected one of: {}",
                                names.join(", ")
                            ),
                        );
                        ok = false;
                    }
                },
                _ => {
                    problems.add(
                        v.span(),
                        format!("`category` of `{name}` must be a string, like \"mutation\""),
                    );
                    ok = false;
                }
            },
            "description" => match v.get_ref() {
                DeValue::String(d) if !d.trim().is_empty() => description = Some(d.trim().to_owned()),
                DeValue::String(_) => {
                    problems.add(
                        v.span(),
                        format!("the description of `{name}` is empty: say what it means for an auditor"),
                    );
                    ok = false;
                }
                _ => {
                    problems.add(v.span(), format!("`description` of `{name}` must be a string"));
                    ok = false;
                }
            },
            "deprecated" => match v.get_ref() {
                DeValue::Boolean(true) => deprecated = Some(Deprecation::default()),
                DeValue::Boolean(false) => {}
                DeValue::String(note) => {
                    deprecated = Some(Deprecation {
                        note: Some(note.trim().to_owned()),
                        replaced_by: None,
                    })
                }
                _ => {
                    problems.add(
                        v.span(),
                        format!("`deprecated` of `{name}` must be `true` or a note (a string)"),
                    );
                    ok = false;
                }
            },
            "replaced_by" => match v.get_ref() {
                DeValue::String(r) => replacements.push((name.to_owned(), v.span(), r.to_string())),
                _ => {
                    problems.add(
                        v.span(),
                        format!("`replaced_by` of `{name}` must be an action name (a string)"),
                    );
                    ok = false;
                }
            },
            other => {
                problems.add(
                    key.span(),
                    unknown_key(other, ACTION_KEYS, &format!("in action `{name}`")),
                );
                ok = false;
            }
        }
    }
    let header = header_span(text, &name_span);
    if category.is_none() && table.get("category").is_none() {
        problems.add(header.clone(), format!("action `{name}` has no `category` (one of: authentication, authorization, data_access, mutation, admin)"));
        ok = false;
    }
    if description.is_none() && table.get("description").is_none() {
        problems.add(
            header,
            format!("action `{name}` has no `description`: say what it means for an auditor"),
        );
        ok = false;
    }
    if replacements.last().is_some_and(|(a, _, _)| a == name) && deprecated.is_none() {
        deprecated = Some(Deprecation::default());
    }
    let (Some(category), Some(description), true) = (category, description, ok) else {
        return None;
    };
    let line = text[..name_span.start.min(text.len())].matches('\n').count() + 1;
    Some(Action {
        name: name.to_owned(),
        category,
        description,
        deprecated,
        standard: false,
        line: Some(line),
    })
}

/// The span of the whole `[actions."x"]` line, for problems about the action as a whole.
fn header_span(text: &str, name_span: &Range<usize>) -> Range<usize> {
    let start = text[..name_span.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    start..name_span.end
}

fn unknown_key(key: &str, expected: &[&str], place: &str) -> String {
    let hint = did_you_mean(key, expected.iter().copied())
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    let list: Vec<String> = expected.iter().map(|k| format!("`{k}`")).collect();
    format!("unknown key `{key}` {place}; {hint}expected {}", list.join(", "))
}

/// The message for a TOML error, and whether it is a duplicated action table.
fn rephrase_toml_error(text: &str, error: &toml::de::Error) -> (String, bool) {
    let message = error.message();
    if message.contains("duplicate") {
        if let Some(span) = error.span() {
            let key = text.get(span.clone()).unwrap_or("").trim_matches('"');
            if key.contains('.') {
                let first = text
                    .match_indices(&format!("\"{key}\""))
                    .map(|(i, _)| i)
                    .find(|&i| i < span.start)
                    .map(|i| format!(" (first declared on line {})", text[..i].matches('\n').count() + 1))
                    .unwrap_or_default();
                return (format!("duplicate action `{key}`{first}"), true);
            }
        }
        let key = error.span().and_then(|s| text.get(s)).unwrap_or("?");
        return (format!("duplicate key `{key}`"), false);
    }
    (format!("invalid TOML: {message}"), false)
}

struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = text.get(start..offset).map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }
}
