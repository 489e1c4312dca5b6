//! Rendering the catalogue of actions for auditors: Markdown, CSV and JSON.

use crate::{Action, Category, Vocabulary};

fn notes(action: &Action) -> String {
    let mut notes = Vec::new();
    if action.standard {
        notes.push("standard".to_owned());
    }
    if let Some(d) = &action.deprecated {
        let mut text = "deprecated".to_owned();
        if let Some(r) = &d.replaced_by {
            text.push_str(&format!(": use `{r}`"));
        }
        if let Some(note) = &d.note {
            text.push_str(&format!(" ({note})"));
        }
        notes.push(text);
    }
    notes.join("; ")
}

fn md_cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

pub(crate) fn markdown(vocab: &Vocabulary) -> String {
    let mut out = String::from("# Audit action catalogue\n\n");
    if !vocab.path().as_os_str().is_empty() {
        out.push_str(&format!("Source: `{}`. ", vocab.path().display()));
    }
    out.push_str(&format!(
        "{} action{}. Every action records its outcome: a failed attempt is the same action with \
         outcome `failure` and a reason.\n",
        vocab.len(),
        if vocab.len() == 1 { "" } else { "s" }
    ));
    for category in Category::ALL {
        let actions: Vec<&Action> = vocab.actions().filter(|a| a.category == category).collect();
        if actions.is_empty() {
            continue;
        }
        out.push_str(&format!("\n## {} (`{}`)\n\n", category.title(), category.as_str()));
        out.push_str("| Action | Description | Notes |\n|---|---|---|\n");
        for a in actions {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                a.name,
                md_cell(&a.description),
                md_cell(&notes(a))
            ));
        }
    }
    out
}

/// A cell a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, carriage return first) gets a
/// leading `'` so it stays text.
fn neutralise(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

pub(crate) fn csv(vocab: &Vocabulary) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = [
        "action",
        "category",
        "description",
        "deprecated",
        "replaced_by",
        "standard",
    ];
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(header);
    for a in vocab.actions() {
        let deprecated = match &a.deprecated {
            None => String::new(),
            Some(d) => d.note.clone().unwrap_or_else(|| "yes".to_owned()),
        };
        let replaced_by = a
            .deprecated
            .as_ref()
            .and_then(|d| d.replaced_by.clone())
            .unwrap_or_default();
        let record = [
            a.name.clone(),
            a.category.as_str().to_owned(),
            a.description.clone(),
            deprecated,
            replaced_by,
            a.standard.to_string(),
        ];
        let _ = writer.write_record(record.iter().map(|c| neutralise(c)));
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

pub(crate) fn json(vocab: &Vocabulary) -> String {
    let actions: Vec<serde_json::Value> = vocab
        .actions()
        .map(|a| {
            let mut entry = serde_json::json!({
                "name": a.name,
                "category": a.category.as_str(),
                "description": a.description,
                "standard": a.standard,
            });
            if let Some(d) = &a.deprecated {
                let mut deprecated = serde_json::Map::new();
                if let Some(note) = &d.note {
                    deprecated.insert("note".into(), note.clone().into());
                }
                if let Some(r) = &d.replaced_by {
                    deprecated.insert("replaced_by".into(), r.clone().into());
                }
                entry["deprecated"] = deprecated.into();
            }
            entry
        })
        .collect();
    let mut doc = serde_json::json!({
        "include_standard": vocab.includes_standard(),
        "actions": actions,
    });
    if !vocab.path().as_os_str().is_empty() {
        doc["source"] = serde_json::Value::String(vocab.path().display().to_string());
    }
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}
