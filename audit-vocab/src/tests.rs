use super::*;

const GOOD: &str = r#"include_standard = true

[actions."billing.update"]
category = "mutation"
description = "A customer's billing details changed"

[actions."customer_record.read"]
category = "data_access"
description = "A customer record with PII was viewed"

[actions."billing.legacy_update"]
category = "mutation"
description = "Old name"
deprecated = "kept for old clients"
replaced_by = "billing.update"
"#;

fn problems(text: &str) -> Vec<Problem> {
    match Vocabulary::parse(text, "audit.toml") {
        Err(VocabError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn parses_a_good_file() {
    let v = Vocabulary::parse(GOOD, "audit.toml").unwrap();
    assert_eq!(v.len(), 3 + STANDARD_ACTIONS.len());
    let a = v.get("customer_record.read").unwrap();
    assert_eq!(a.category, Category::DataAccess);
    assert_eq!(a.line, Some(7));
    assert!(!a.standard);
    let d = v.get("billing.legacy_update").unwrap().deprecated.clone().unwrap();
    assert_eq!(d.replaced_by.as_deref(), Some("billing.update"));
    assert_eq!(
        d.message("billing.legacy_update"),
        "audit action `billing.legacy_update` is deprecated: kept for old clients (use `billing.update` instead)"
    );
    assert!(v.get("user.login").unwrap().standard);
}

#[test]
fn standard_set_is_off_by_default() {
    let v = Vocabulary::parse("[actions.\"a.b\"]\ncategory = \"admin\"\ndescription = \"x\"\n", "f").unwrap();
    assert_eq!(v.len(), 1);
    assert!(v.get("user.login").is_none());
    assert!(Vocabulary::parse("", "f").unwrap().is_empty());
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = r#"include_standard = true
colour = "blue"

[actions."Billing.update"]
category = "mutation"
description = "x"

[actions."billing.update"]
category = "mutations"
description = "x"

[actions."user.login"]
category = "authentication"
description = "mine"

[actions."invoice.delete"]
categroy = "mutation"
description = ""
"#;
    let p = problems(text);
    let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![2, 4, 9, 12, 16, 17, 18], "{p:#?}");
    assert!(p[0].message.contains("unknown key `colour`"), "{}", p[0].message);
    assert!(
        p[1].message.starts_with("bad action name: segment `Billing`"),
        "{}",
        p[1].message
    );
    assert_eq!(p[1].column, 10);
    assert!(
        p[2].message.contains("unknown category `mutations`"),
        "{}",
        p[2].message
    );
    assert!(p[2].message.contains("did you mean `mutation`?"), "{}", p[2].message);
    assert!(
        p[3].message.starts_with("duplicate action `user.login`"),
        "{}",
        p[3].message
    );
    assert!(p[4].message.contains("has no `category`"), "{}", p[4].message);
    assert!(p[5].message.contains("unknown key `categroy`"), "{}", p[5].message);
    assert!(p[5].message.contains("did you mean `category`?"), "{}", p[5].message);
    assert!(
        p[6].message.contains("description of `invoice.delete` is empty"),
        "{}",
        p[6].message
    );
}

#[test]
fn duplicate_declarations_name_both_lines() {
    let text = "[actions.\"a.b\"]\ncategory = \"admin\"\ndescription = \"x\"\n\n[actions.\"a.b\"]\ncategory = \"admin\"\ndescription = \"y\"\n";
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].line, 5);
    assert_eq!(p[0].message, "duplicate action `a.b` (first declared on line 1)");
}

#[test]
fn unquoted_dotted_names_get_a_hint() {
    let p = problems("[actions.billing.update]\ncategory = \"mutation\"\ndescription = \"x\"\n");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].message.contains("[actions.\"billing.update\"]"),
        "{}",
        p[0].message
    );
}

#[test]
fn syntax_errors_have_positions() {
    let p = problems("[actions.\"a.b\"]\ncategory = mutation\n");
    assert_eq!(p[0].line, 2, "{p:#?}");
    assert!(p[0].message.starts_with("invalid TOML"), "{}", p[0].message);
}

#[test]
fn replaced_by_must_exist() {
    let text = "[actions.\"a.b\"]\ncategory = \"admin\"\ndescription = \"x\"\nreplaced_by = \"a.c\"\n";
    let p = problems(text);
    assert!(
        p[0].message.contains("names `a.c`, which is not declared"),
        "{}",
        p[0].message
    );
}

#[test]
fn display_names_file_line_and_problem() {
    let err = Vocabulary::parse(
        "[actions.\"A.b\"]\ncategory = \"admin\"\ndescription = \"x\"\n",
        "/x/audit.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("malformed audit vocabulary /x/audit.toml (1 problem):\n/x/audit.toml:1:10: bad action name"),
        "{err}"
    );
}

#[test]
fn action_name_rule() {
    for good in ["a.b", "billing.update", "a1.b_2.c", "user.mfa_challenge"] {
        validate_action_name(good).unwrap();
    }
    for bad in ["", "a", "A.b", "a..b", "a.b.", ".a.b", "a.1b", "a.b-c", "a._b", "a. b"] {
        assert!(validate_action_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn suggestions() {
    let v = Vocabulary::parse(GOOD, "audit.toml").unwrap();
    assert_eq!(v.suggest("biling.update"), Some("billing.update"));
    assert_eq!(v.suggest("user.logni"), Some("user.login"));
    assert_eq!(v.suggest("customer_record.raed"), Some("customer_record.read"));
    assert_eq!(v.suggest("something.else"), None);
}

#[test]
fn find_from_searches_upwards_and_reports_where() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).unwrap();
    match find_from(&nested) {
        Err(VocabError::NotFound { searched }) => {
            assert_eq!(searched[0], nested);
            assert_eq!(searched[1], dir.path().join("a"));
            let message = VocabError::NotFound { searched }.to_string();
            assert!(message.starts_with("no `audit.toml` found; looked in "), "{message}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(dir.path().join("a/audit.toml"), GOOD).unwrap();
    assert_eq!(find_from(&nested).unwrap(), dir.path().join("a/audit.toml"));
    let v = Vocabulary::load_from(&nested).unwrap();
    assert!(v.get("billing.update").is_some());
    let missing = Vocabulary::load(dir.path().join("nope.toml")).unwrap_err().to_string();
    assert!(missing.ends_with("nope.toml does not exist"), "{missing}");
}

#[test]
fn catalogue_renderings() {
    let mut text = GOOD.to_owned();
    text.push_str("\n[actions.\"report.run\"]\ncategory = \"admin\"\ndescription = \"=HYPERLINK(\\\"x\\\") | pipe\"\n");
    let v = Vocabulary::parse(&text, "audit.toml").unwrap();

    let md = v.render_markdown();
    assert!(md.contains("## Data access (`data_access`)"), "{md}");
    assert!(
        md.contains("| `billing.legacy_update` | Old name | deprecated: use `billing.update` (kept for old clients) |"),
        "{md}"
    );
    assert!(md.contains("\\| pipe"), "{md}");

    let csv = v.render_csv();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("action,category,description,deprecated,replaced_by,standard")
    );
    assert!(
        csv.contains("report.run,admin,\"'=HYPERLINK(\"\"x\"\") | pipe\",,,false"),
        "{csv}"
    );

    let json: serde_json::Value = serde_json::from_str(&v.render_json()).unwrap();
    let actions = json["actions"].as_array().unwrap();
    assert_eq!(actions.len(), v.len());
    let legacy = actions.iter().find(|a| a["name"] == "billing.legacy_update").unwrap();
    assert_eq!(legacy["deprecated"]["replaced_by"], "billing.update");
    assert_eq!(json["include_standard"], true);
}
