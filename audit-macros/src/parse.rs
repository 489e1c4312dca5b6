//! Parsing `#[audited(...)]`: the arguments as written (with their spans) and the annotated
//! item. Every malformed argument is reported; parsing goes on after each one.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, Ident, ItemFn, LitStr, Token};

use crate::errors::Errors;

/// The argument names, for messages and suggestions.
pub const ARGUMENTS: &[&str] = &[
    "action",
    "resource",
    "id",
    "actor",
    "tenant",
    "context",
    "reason",
    "fail_closed",
    "fail_open",
    "failure_status",
    "vocabulary",
];

/// Where a value comes from.
pub enum Value {
    /// An expression evaluated before the body runs (arguments, fields of arguments).
    Before(Expr),
    /// `return` followed by a path into the returned value (`return.id`), evaluated after
    /// the body returned (for a `Result`, on the `Ok` value).
    Return {
        /// The `return` keyword.
        keyword: Token![return],
        /// What follows it (`.id`, `.customer.id()`), possibly nothing.
        tail: TokenStream,
    },
}

impl Value {
    /// The span of the value's first token.
    pub fn span(&self) -> Span {
        match self {
            Value::Before(e) => e.span(),
            Value::Return { keyword, .. } => keyword.span,
        }
    }
}

/// How a failure reason is made from an `Err`.
pub enum Reason {
    /// A fixed text.
    Text(LitStr),
    /// A fn or closure from `&E` to something `Display`.
    With(Expr),
}

/// A `key = value` of `context(...)`.
pub struct ContextEntry {
    pub key: String,
    pub key_span: Span,
    pub value: Value,
}

/// The arguments as written.
#[derive(Default)]
pub struct Args {
    pub action: Option<LitStr>,
    pub resource: Option<(Ident, LitStr)>,
    pub id: Option<(Ident, Value)>,
    pub actor: Option<Value>,
    pub tenant: Option<Value>,
    pub context: Vec<ContextEntry>,
    pub reason: Option<(Ident, Reason)>,
    pub fail_closed: Option<Ident>,
    pub fail_open: Option<Ident>,
    pub failure_status: Option<Expr>,
    pub vocabulary: Option<LitStr>,
    /// Every argument written, well-formed or not (and what a misspelled one probably meant),
    /// so that validation does not report a malformed argument as missing too.
    pub written: Vec<String>,
}

/// Parses the attribute's arguments, reporting every problem into `errors`.
pub fn args(tokens: TokenStream, errors: &mut Errors) -> Args {
    let parser = |input: ParseStream| -> syn::Result<Args> {
        let mut args = Args::default();
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            if let Err(e) = one(input, &mut args, &mut seen) {
                errors.push(e);
                skip_past_comma(input);
                continue;
            }
            if input.is_empty() {
                break;
            }
            if let Err(e) = input.parse::<Token![,]>() {
                errors.push(syn::Error::new(e.span(), "expected `,` between arguments"));
                skip_past_comma(input);
            }
        }
        Ok(args)
    };
    match parser.parse2(tokens) {
        Ok(args) => args,
        Err(e) => {
            errors.push(e);
            Args::default()
        }
    }
}

fn skip_past_comma(input: ParseStream) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            rest = next;
            if let TokenTree::Punct(p) = &tt
                && p.as_char() == ','
            {
                break;
            }
        }
        Ok(((), rest))
    });
}

fn one(input: ParseStream, args: &mut Args, seen: &mut Vec<String>) -> syn::Result<()> {
    let key = input.call(Ident::parse_any).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected an argument name, like `action = \"billing.update\"`",
        )
    })?;
    let name = key.to_string();
    args.written.push(name.clone());
    if let Some(meant) = audit_vocab::did_you_mean(&name, ARGUMENTS.iter().copied()) {
        args.written.push(meant.to_owned());
    }
    if ARGUMENTS.contains(&name.as_str()) {
        if seen.contains(&name) {
            // Parse the value anyway so that the next argument is read correctly.
            let _ = skip_value(input);
            return Err(syn::Error::new(key.span(), format!("duplicate argument `{name}`")));
        }
        seen.push(name.clone());
    }
    match name.as_str() {
        "action" => args.action = Some(string(input, &key, "action = \"billing.update\"")?),
        "resource" => args.resource = Some((key.clone(), string(input, &key, "resource = \"customer\"")?)),
        "vocabulary" => args.vocabulary = Some(string(input, &key, "vocabulary = \"../audit.toml\"")?),
        "id" => {
            equals(input, &key, "id = customer_id")?;
            args.id = Some((key, value(input, "id")?));
        }
        "actor" => {
            equals(input, &key, "actor = session.actor()")?;
            args.actor = Some(value(input, "actor")?);
        }
        "tenant" => {
            equals(input, &key, "tenant = req.tenant_id")?;
            args.tenant = Some(value(input, "tenant")?);
        }
        "reason" => {
            equals(input, &key, "reason = \"payment declined\"")?;
            let reason = if input.peek(LitStr) {
                Reason::Text(input.parse()?)
            } else {
                Reason::With(input.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "`reason` takes a text (`reason = \"payment declined\"`) or a fn of the error \
                         (`reason = |e| e.code()`)",
                    )
                })?)
            };
            args.reason = Some((key, reason));
        }
        "context" => args.context = context(input, &key)?,
        "failure_status" => {
            equals(input, &key, "failure_status = |status| status >= 500")?;
            args.failure_status = Some(input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "`failure_status` takes a fn of the HTTP status (`u16`) saying whether it is a failure, as in \
                     `failure_status = |status| status >= 500`",
                )
            })?);
        }
        "fail_closed" | "fail_open" => {
            if input.peek(Token![=]) || input.peek(syn::token::Paren) {
                let _ = skip_value(input);
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{name}` is a flag and takes no value: write `{name}` alone"),
                ));
            }
            if name == "fail_closed" {
                args.fail_closed = Some(key);
            } else {
                args.fail_open = Some(key);
            }
        }
        _ => {
            let _ = skip_value(input);
            let hint = audit_vocab::did_you_mean(&name, ARGUMENTS.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown argument `{name}` of #[audited]; {hint}expected one of: {}",
                    ARGUMENTS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Consumes `= value` or `(...)` after a bad key, up to the next top-level comma.
fn skip_value(input: ParseStream) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if let TokenTree::Punct(p) = &tt
                && p.as_char() == ','
            {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

fn equals(input: ParseStream, key: &Ident, example: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        Ok(())
    } else {
        let _ = skip_value(input);
        Err(syn::Error::new(
            key.span(),
            format!("expected `=` after `{key}`, as in `{example}`"),
        ))
    }
}

fn string(input: ParseStream, key: &Ident, example: &str) -> syn::Result<LitStr> {
    equals(input, key, example)?;
    if input.peek(LitStr) {
        return input.parse();
    }
    let value = input.step(|cursor| {
        let mut rest = *cursor;
        let mut value = TokenStream::new();
        while let Some((tt, next)) = rest.token_tree() {
            if let TokenTree::Punct(p) = &tt
                && p.as_char() == ','
            {
                break;
            }
            value.extend([tt]);
            rest = next;
        }
        Ok((value, rest))
    })?;
    let message = format!("`{key}` takes a string literal, as in `{example}`");
    if value.is_empty() {
        Err(syn::Error::new(key.span(), message))
    } else {
        Err(syn::Error::new_spanned(value, message))
    }
}

fn value(input: ParseStream, key: &str) -> syn::Result<Value> {
    if input.peek(Token![return]) {
        let keyword: Token![return] = input.parse()?;
        let tail = input.step(|cursor| {
            let mut rest = *cursor;
            let mut tail = TokenStream::new();
            while let Some((tt, next)) = rest.token_tree() {
                if let TokenTree::Punct(p) = &tt
                    && p.as_char() == ','
                {
                    break;
                }
                tail.extend([tt]);
                rest = next;
            }
            Ok((tail, rest))
        })?;
        if let Some(first) = tail.clone().into_iter().next() {
            let ok = matches!(&first, TokenTree::Punct(p) if p.as_char() == '.')
                || matches!(&first, TokenTree::Group(g) if g.delimiter() == proc_macro2::Delimiter::Bracket);
            if !ok {
                return Err(syn::Error::new(
                    first.span(),
                    format!("after `return`, name a part of the returned value, as in `{key} = return.id`"),
                ));
            }
        }
        return Ok(Value::Return { keyword, tail });
    }
    if input.is_empty() || input.peek(Token![,]) {
        return Err(input.error(format!("expected a value for `{key}`")));
    }
    Ok(Value::Before(input.parse()?))
}

fn context(input: ParseStream, key: &Ident) -> syn::Result<Vec<ContextEntry>> {
    if !input.peek(syn::token::Paren) {
        let _ = skip_value(input);
        return Err(syn::Error::new(
            key.span(),
            "`context` takes a list of `key = value`, as in `context(request_id = req.id, ip = req.ip)`",
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    let mut entries: Vec<ContextEntry> = Vec::new();
    while !content.is_empty() {
        let (name, span) = if content.peek(LitStr) {
            let lit: LitStr = content.parse()?;
            (lit.value(), lit.span())
        } else {
            let ident = content.call(Ident::parse_any).map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected a context key (a name or a string), as in `request_id = req.id`",
                )
            })?;
            (ident.to_string(), ident.span())
        };
        if !content.peek(Token![=]) {
            return Err(syn::Error::new(
                span,
                format!("expected `=` after `{name}`, as in `{name} = req.{name}`"),
            ));
        }
        content.parse::<Token![=]>()?;
        let value = value(&content, &name)?;
        if entries.iter().any(|e| e.key == name) {
            return Err(syn::Error::new(span, format!("duplicate context key `{name}`")));
        }
        entries.push(ContextEntry {
            key: name,
            key_span: span,
            value,
        });
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(entries)
}

/// The item under the attribute.
pub enum Target {
    Fn(Box<ItemFn>),
    /// Not something `#[audited]` applies to; the error says why. The tokens are given back
    /// unchanged.
    Other(syn::Error),
}

/// Parses the annotated item.
pub fn target(item: TokenStream) -> Target {
    match syn::parse2::<ItemFn>(item.clone()) {
        Ok(f) => Target::Fn(Box::new(f)),
        Err(fn_error) => {
            if let Ok(m) = syn::parse2::<syn::TraitItemFn>(item.clone())
                && m.default.is_none()
            {
                return Target::Other(syn::Error::new_spanned(
                    &m.sig,
                    "#[audited] needs a fn body: put it on the fn of each `impl` of the trait, or on a \
                     default method",
                ));
            }
            match syn::parse2::<syn::Item>(item) {
                Ok(other) => Target::Other(syn::Error::new_spanned(
                    item_head(&other),
                    format!("#[audited] applies to fns and methods, not to {}", describe(&other)),
                )),
                Err(_) => Target::Other(fn_error),
            }
        }
    }
}

/// The tokens that name an item (`struct Customer`), for errors about the whole item.
fn item_head(item: &syn::Item) -> TokenStream {
    use quote::quote;
    use syn::Item;
    match item {
        Item::Struct(s) => {
            let (t, i) = (&s.struct_token, &s.ident);
            quote!(#t #i)
        }
        Item::Enum(e) => {
            let (t, i) = (&e.enum_token, &e.ident);
            quote!(#t #i)
        }
        Item::Const(c) => {
            let (t, i) = (&c.const_token, &c.ident);
            quote!(#t #i)
        }
        Item::Static(s) => {
            let (t, i) = (&s.static_token, &s.ident);
            quote!(#t #i)
        }
        Item::Trait(t) => {
            let (k, i) = (&t.trait_token, &t.ident);
            quote!(#k #i)
        }
        Item::Mod(m) => {
            let (t, i) = (&m.mod_token, &m.ident);
            quote!(#t #i)
        }
        Item::Type(t) => {
            let (k, i) = (&t.type_token, &t.ident);
            quote!(#k #i)
        }
        Item::Impl(i) => {
            let t = &i.impl_token;
            quote!(#t)
        }
        other => quote::ToTokens::to_token_stream(other),
    }
}

fn describe(item: &syn::Item) -> &'static str {
    use syn::Item;
    match item {
        Item::Struct(_) => "a struct",
        Item::Enum(_) => "an enum",
        Item::Union(_) => "a union",
        Item::Const(_) => "a const",
        Item::Static(_) => "a static",
        Item::Trait(_) => "a trait",
        Item::Impl(_) => "an impl block (put it on each fn inside)",
        Item::Mod(_) => "a module",
        Item::Type(_) => "a type alias",
        Item::Use(_) => "a use declaration",
        Item::ForeignMod(_) => "an extern block",
        Item::Macro(_) => "a macro invocation",
        _ => "this item",
    }
}
