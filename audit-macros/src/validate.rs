//! Checking the parsed arguments against the vocabulary and the fn they annotate, giving a
//! [`Plan`] that is known to expand to correct code (or every problem found).

use std::path::PathBuf;

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{ItemFn, LitStr, ReturnType, Type};

use crate::errors::Errors;
use crate::parse::{Args, ContextEntry, Reason, Value};
use crate::vocab::{self, Origin};

/// What to do when no healthy sink is installed.
pub enum Refusal {
    /// `fail_closed`: refuse whatever the global mode; a `Result` fn returns
    /// `Err(E::from(AuditError))`, checked at compile time.
    Closed(Span),
    /// The global failure mode decides at run time.
    Runtime,
    /// `fail_open`: never refuse; a lost event is reported loudly.
    Open,
}

/// The shape of the fn's return value.
pub enum Returns {
    /// Nothing (`()`).
    Nothing,
    /// A `Result`: `Ok` is a success, `Err` a failure.
    Result {
        /// The return type as a type annotation (`impl Trait` replaced by `_`).
        annotation: Type,
        /// Where errors about the error type point.
        span: Span,
    },
    /// Any other value: a return is a success.
    Value {
        /// The return type as a type annotation (`impl Trait` replaced by `_`).
        annotation: Type,
    },
}

/// A validated `#[audited]`.
pub struct Plan {
    pub func: ItemFn,
    pub action: LitStr,
    pub category: audit_vocab::Category,
    pub deprecation: Option<String>,
    pub vocabulary: PathBuf,
    pub resource: Option<(LitStr, Value)>,
    pub actor: Option<Value>,
    pub tenant: Option<Value>,
    pub context: Vec<ContextEntry>,
    pub reason: Option<Reason>,
    pub refusal: Refusal,
    pub returns: Returns,
    /// Which HTTP statuses make the call a failure (`failure_status = ...`).
    pub failure_status: Option<syn::Expr>,
    /// The fn returns `impl IntoResponse`: the body's value is turned into the response it
    /// stands for, so that its status is known (and a refusal can answer 503).
    pub into_response: bool,
}

/// Checks everything, reporting every problem into `errors`; `None` when any was found.
pub fn validate(args: Args, func: ItemFn, origin: &Origin, errors: &mut Errors) -> Option<Plan> {
    if let Some(constness) = &func.sig.constness {
        errors.spanned(
            quote::quote!(#constness),
            "#[audited] cannot be used on a `const fn`: recording an event happens at run time, \
             so an audited fn cannot be evaluated at compile time",
        );
    }

    let returns = returns(&func.sig.output);

    let written = |name: &str| args.written.iter().any(|w| w == name);
    let (category, deprecation, vocabulary) = match &args.action {
        None if written("action") => (None, None, None),
        None => {
            errors.at(
                Span::call_site(),
                "missing `action`: every audited fn names its action from the vocabulary (audit.toml), \
                 as in #[audited(action = \"billing.update\")]",
            );
            (None, None, None)
        }
        Some(lit) => match check_action(lit, args.vocabulary.as_ref(), origin, errors) {
            Some((category, deprecation, path)) => (Some(category), deprecation, Some(path)),
            None => (None, None, None),
        },
    };

    let resource = match (args.resource, args.id) {
        (Some((_, kind)), Some((_, id))) => {
            if kind.value().trim().is_empty() {
                errors.at(
                    kind.span(),
                    "the resource type is empty; name it, as in `resource = \"customer\"`",
                );
            }
            Some((kind, id))
        }
        (Some(_), None) if written("id") => None,
        (None, Some(_)) if written("resource") => None,
        (Some((key, kind)), None) => {
            errors.spanned(
                quote::quote!(#key = #kind),
                format!(
                    "`resource = {:?}` needs `id = ...` too: an argument (`id = customer_id`), a field of \
                     one (`id = req.customer_id`) or a part of the returned value (`id = return.id`)",
                    kind.value()
                ),
            );
            None
        }
        (None, Some((key, _))) => {
            errors.at(
                key.span(),
                "`id` needs `resource = \"...\"` too: the type of the resource it identifies, as in \
                 `resource = \"customer\", id = customer_id`",
            );
            None
        }
        (None, None) => None,
    };

    let reason = match args.reason {
        Some((key, reason)) => {
            if !matches!(returns, Returns::Result { .. }) {
                errors.at(
                    key.span(),
                    format!(
                        "`reason` describes an `Err`, but `{}` does not return a `Result`",
                        func.sig.ident
                    ),
                );
            }
            Some(reason)
        }
        None => None,
    };

    if matches!(returns, Returns::Nothing) {
        let values = resource
            .iter()
            .map(|(_, v)| v)
            .chain(args.actor.iter())
            .chain(args.tenant.iter())
            .chain(args.context.iter().map(|c| &c.value));
        for value in values {
            if let Value::Return { keyword, .. } = value {
                errors.at(
                    keyword.span,
                    format!(
                        "`return` names the returned value, but `{}` returns nothing",
                        func.sig.ident
                    ),
                );
            }
        }
    }

    let refusal = match (args.fail_closed, args.fail_open) {
        (Some(_), Some(open)) => {
            errors.at(
                open.span(),
                "`fail_closed` and `fail_open` contradict each other: keep one",
            );
            Refusal::Runtime
        }
        (Some(closed), None) => Refusal::Closed(closed.span()),
        (None, Some(_)) => Refusal::Open,
        (None, None) => Refusal::Runtime,
    };

    for entry in &args.context {
        if STANDARD_CONTEXT_KEYS.contains(&entry.key.as_str()) {
            continue;
        }
        if let Some(standard) = near_miss(&entry.key) {
            errors.at(
                entry.key_span,
                format!(
                    "context key `{}` is a near miss of the standard key `{standard}`: write `{standard}` (a key \
                     of your own must not look like a standard one, or searches for `{standard}` miss it)",
                    entry.key
                ),
            );
        }
    }

    let into_response = returns_impl_into_response(&func.sig.output);

    if !errors.is_empty() {
        return None;
    }
    Some(Plan {
        func,
        action: args.action?,
        category: category?,
        deprecation,
        vocabulary: vocabulary?,
        resource,
        actor: args.actor,
        tenant: args.tenant,
        context: args.context,
        reason,
        refusal,
        returns,
        failure_status: args.failure_status,
        into_response,
    })
}

/// The context members every record may have; a free key that misspells one is an error.
const STANDARD_CONTEXT_KEYS: &[&str] = &["ip", "user_agent", "request_id", "session_id", "trace_id"];

/// The standard context key `key` misspells: the same once case and separators are set
/// aside (`requestId`, `Request-ID`), or, for keys long enough not to be words of their own,
/// within two edits (`reqest_id`).
fn near_miss(key: &str) -> Option<&'static str> {
    let plain = |k: &str| {
        k.chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
            .to_lowercase()
    };
    if let Some(standard) = STANDARD_CONTEXT_KEYS.iter().find(|s| plain(s) == plain(key)) {
        return Some(standard);
    }
    if key.len() < 6 {
        return None;
    }
    audit_vocab::did_you_mean(key, STANDARD_CONTEXT_KEYS.iter().copied())
}

/// True for `-> impl IntoResponse` (any path ending in `IntoResponse`).
fn returns_impl_into_response(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else { return false };
    let Type::ImplTrait(t) = &**ty else { return false };
    t.bounds.iter().any(|b| match b {
        syn::TypeParamBound::Trait(t) => t.path.segments.last().is_some_and(|s| s.ident == "IntoResponse"),
        _ => false,
    })
}

pub type Checked = (audit_vocab::Category, Option<String>, PathBuf);

pub fn check_action(lit: &LitStr, attribute: Option<&LitStr>, origin: &Origin, errors: &mut Errors) -> Option<Checked> {
    let name = lit.value();
    let path = match vocab::locate(origin, attribute.map(LitStr::value).as_deref()) {
        Ok(path) => path,
        Err(e) => {
            let span = attribute.map_or_else(|| lit.span(), LitStr::span);
            errors.at(
                span,
                vocab::not_found_message(&e, attribute.map(LitStr::value).as_deref()),
            );
            return None;
        }
    };
    let loaded = match vocab::load(&path) {
        Ok(loaded) => loaded,
        Err(message) => {
            errors.at(lit.span(), message);
            return None;
        }
    };
    let file = loaded.path.display();
    match loaded.vocab.get(&name) {
        Some(action) => {
            let deprecation = action.deprecated.as_ref().map(|d| d.message(&name));
            Some((action.category, deprecation, loaded.path.clone()))
        }
        None => {
            let message = if let Err(why) = audit_vocab::validate_action_name(&name) {
                format!("invalid action name: {why}")
            } else if audit_vocab::STANDARD_ACTIONS.iter().any(|s| s.name == name) {
                format!(
                    "unknown audit action `{name}`: it is in the standard set, which {file} does not switch on; \
                     add `include_standard = true` to it"
                )
            } else if let Some(suggestion) = loaded.vocab.suggest(&name) {
                format!("unknown audit action `{name}`: did you mean `{suggestion}`? (actions are declared in {file})")
            } else {
                format!(
                    "unknown audit action `{name}`: declare it in {file}, as in\n\
                     [actions.\"{name}\"]\ncategory = \"mutation\"\ndescription = \"what it means for an auditor\""
                )
            };
            errors.at(lit.span(), message);
            None
        }
    }
}

fn returns(output: &ReturnType) -> Returns {
    let ty = match output {
        ReturnType::Default => return Returns::Nothing,
        ReturnType::Type(_, ty) => ty,
    };
    let mut annotation = (**ty).clone();
    ReplaceImplTrait.visit_type_mut(&mut annotation);
    match &**ty {
        Type::Tuple(t) if t.elems.is_empty() => Returns::Nothing,
        Type::Never(_) => Returns::Value {
            annotation: syn::parse_quote!(_),
        },
        Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "Result") => {
            Returns::Result {
                annotation,
                span: error_type_span(p).unwrap_or_else(|| ty.span()),
            }
        }
        _ => Returns::Value { annotation },
    }
}

/// The span of `E` in `Result<T, E>`, where it is written.
fn error_type_span(path: &syn::TypePath) -> Option<Span> {
    let syn::PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [_, error] => Some(error.span()),
        _ => None,
    }
}

/// `impl Trait` cannot be written in a type annotation inside the body; `_` infers it.
struct ReplaceImplTrait;

impl VisitMut for ReplaceImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(t) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](t.span()),
            });
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}
