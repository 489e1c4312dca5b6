//! `#[derive(AuditModel)]`: parse the `#[audit(...)]` attributes, validate them (reporting
//! every problem), and expand to an `impl audit::AuditModel`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Member, Type};

use crate::errors::Errors;
use crate::validate::check_action;
use crate::vocab::{self, Origin};

const STRUCT_KEYS: &[&str] = &["resource", "create", "update", "delete"];
const OPERATIONS: [&str; 3] = ["create", "update", "delete"];
const FIELD_KEYS: &[&str] = &["id", "redact", "skip", "rename"];

/// What a field says about itself.
#[derive(Default)]
struct FieldAttrs {
    id: Option<Span>,
    redact: Option<Span>,
    skip: Option<Span>,
    rename: Option<LitStr>,
}

struct Field {
    member: Member,
    name: String,
    ty: Type,
    span: Span,
    attrs: FieldAttrs,
}

/// What the struct names as the action of one operation.
enum Named {
    /// An action of the vocabulary.
    Action(LitStr),
    /// `false`: no default action is expected for it.
    Not,
}

/// What the struct's `#[audit(...)]` says.
#[derive(Default)]
struct StructAttrs {
    resource: Option<LitStr>,
    /// Per operation (`create`, `update`, `delete`), the action named instead of the default.
    actions: [Option<Named>; 3],
}

/// A validated model.
struct Model {
    input: DeriveInput,
    resource: String,
    id: Member,
    fields: Vec<Field>,
    /// Per operation, the action as found in the vocabulary.
    actions: [TokenStream; 3],
}

/// The derive's entry point.
pub fn derive(input: DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    match validate(input, &mut errors) {
        Some(model) if errors.is_empty() => expand(model),
        _ => errors.into_error().map(|e| e.to_compile_error()).unwrap_or_default(),
    }
}

// ---- parse ----

fn parse_struct_attrs(input: &DeriveInput, errors: &mut Errors) -> StructAttrs {
    let mut out = StructAttrs::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("audit")) {
        let result = attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
            match key.as_str() {
                "resource" => {
                    let lit: LitStr = meta.value()?.parse().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "`resource` takes a string literal, as in `#[audit(resource = \"customer\")]`",
                        )
                    })?;
                    if out.resource.is_some() {
                        errors.at(meta.path.span(), "duplicate `resource`");
                    }
                    out.resource = Some(lit);
                    Ok(())
                }
                "create" | "update" | "delete" => {
                    let index = OPERATIONS.iter().position(|o| *o == key).expect("listed");
                    let value = meta.value()?;
                    let named = if value.peek(syn::LitBool) {
                        let b: syn::LitBool = value.parse()?;
                        if b.value {
                            return Err(syn::Error::new(
                                b.span(),
                                format!("`{key}` takes an action name, or `false` for none"),
                            ));
                        }
                        Named::Not
                    } else {
                        Named::Action(value.parse().map_err(|e| {
                            syn::Error::new(
                                e.span(),
                                format!(
                                    "`{key}` takes the action recording it, as in `#[audit({key} = \"billing.{key}\")]`, \
                                     or `false`"
                                ),
                            )
                        })?)
                    };
                    if out.actions[index].is_some() {
                        errors.at(meta.path.span(), format!("duplicate `{key}`"));
                    }
                    out.actions[index] = Some(named);
                    Ok(())
                }
                _ => Err(meta.error(unknown("struct", &key, STRUCT_KEYS))),
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    out
}

/// Each operation's action, looked up in the vocabulary: a name the struct gives must be
/// declared (a compile error otherwise); a default name the vocabulary lacks is `Missing`, so
/// that only an operation actually recorded under it fails to compile.
fn actions(resource: &str, named: [Option<Named>; 3], origin: &Origin, errors: &mut Errors) -> [TokenStream; 3] {
    let loaded = vocab::locate(origin, None)
        .ok()
        .and_then(|path| vocab::load(&path).ok());
    let mut out: [TokenStream; 3] = Default::default();
    for (i, (operation, named)) in OPERATIONS.iter().zip(named).enumerate() {
        out[i] = match named {
            Some(Named::Not) => quote!(::audit::__private::ModelAction::Unchecked),
            Some(Named::Action(lit)) => match check_action(&lit, None, origin, errors) {
                Some((category, _, _)) => checked(&lit.value(), category),
                None => quote!(::audit::__private::ModelAction::Unchecked),
            },
            None => {
                let name = format!("{resource}.{operation}");
                match loaded.as_ref().map(|l| l.vocab.get(&name)) {
                    Some(Some(action)) => checked(&name, action.category),
                    Some(None) => quote!(::audit::__private::ModelAction::Missing(#name)),
                    // No vocabulary to check against: checked at run time.
                    None => quote!(::audit::__private::ModelAction::Unchecked),
                }
            }
        };
    }
    out
}

fn checked(name: &str, category: audit_vocab::Category) -> TokenStream {
    let category = Ident::new(category.variant_name(), Span::call_site());
    quote! {
        ::audit::__private::ModelAction::Checked(
            ::audit::__private::Action::__checked(#name, ::audit::__private::Category::#category)
        )
    }
}

fn parse_field_attrs(field: &syn::Field, errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("audit")) {
        let result = attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
            let span = meta.path.span();
            let flag = |slot: &mut Option<Span>, errors: &mut Errors| {
                if slot.is_some() {
                    errors.at(span, format!("duplicate `{key}`"));
                }
                *slot = Some(span);
            };
            match key.as_str() {
                "id" => flag(&mut out.id, errors),
                "redact" => flag(&mut out.redact, errors),
                "skip" => flag(&mut out.skip, errors),
                "rename" => {
                    let lit: LitStr = meta.value()?.parse().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "`rename` takes a string literal, as in `#[audit(rename = \"email\")]`",
                        )
                    })?;
                    out.rename = Some(lit);
                }
                _ => return Err(meta.error(unknown("field", &key, FIELD_KEYS))),
            }
            if matches!(key.as_str(), "id" | "redact" | "skip")
                && (meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren))
            {
                return Err(meta.error(format!("`{key}` is a flag and takes no value: write `#[audit({key})]`")));
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    out
}

fn unknown(place: &str, key: &str, expected: &[&str]) -> String {
    let hint = audit_vocab::did_you_mean(key, expected.iter().copied())
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    let list: Vec<String> = expected.iter().map(|k| format!("`{k}`")).collect();
    format!(
        "unknown {place} attribute `{key}` of AuditModel; {hint}expected {}",
        list.join(", ")
    )
}

// ---- validate ----

fn validate(input: DeriveInput, errors: &mut Errors) -> Option<Model> {
    let StructAttrs {
        resource: resource_lit,
        actions: named,
    } = parse_struct_attrs(&input, errors);
    let data = match &input.data {
        Data::Struct(s) => s,
        Data::Enum(e) => {
            let (t, i) = (&e.enum_token, &input.ident);
            errors.spanned(
                quote!(#t #i),
                "AuditModel can only be derived for structs: a model is one record with an id",
            );
            return None;
        }
        Data::Union(u) => {
            let (t, i) = (&u.union_token, &input.ident);
            errors.spanned(
                quote!(#t #i),
                "AuditModel can only be derived for structs: a model is one record with an id",
            );
            return None;
        }
    };

    let mut fields = Vec::new();
    let iter: Vec<&syn::Field> = match &data.fields {
        Fields::Named(f) => f.named.iter().collect(),
        Fields::Unnamed(f) => f.unnamed.iter().collect(),
        Fields::Unit => Vec::new(),
    };
    for (index, field) in iter.into_iter().enumerate() {
        let attrs = parse_field_attrs(field, errors);
        let (member, default_name) = match &field.ident {
            Some(ident) => (
                Member::Named(ident.clone()),
                ident.to_string().trim_start_matches("r#").to_owned(),
            ),
            None => (
                Member::Unnamed(syn::Index {
                    index: index as u32,
                    span: field.ty.span(),
                }),
                index.to_string(),
            ),
        };
        let name = attrs.rename.as_ref().map_or(default_name, LitStr::value);
        if let (Some(_), Some(skip)) = (attrs.redact, attrs.skip) {
            errors.at(
                skip,
                "a field is either redacted (kept as a fingerprint) or skipped (left out), not both",
            );
        }
        if let (Some(_), Some(redact)) = (attrs.id, attrs.redact) {
            errors.at(
                redact,
                "the id field cannot be redacted: it is recorded in the clear as the resource id",
            );
        }
        fields.push(Field {
            member,
            name,
            ty: field.ty.clone(),
            span: field.span(),
            attrs,
        });
    }

    let marked: Vec<&Field> = fields.iter().filter(|f| f.attrs.id.is_some()).collect();
    let id = match marked.as_slice() {
        [one] => Some(one.member.clone()),
        [] => match fields
            .iter()
            .find(|f| matches!(&f.member, Member::Named(i) if i == "id"))
        {
            Some(f) => Some(f.member.clone()),
            None => {
                let ident = &input.ident;
                errors.spanned(
                    quote!(#ident),
                    format!(
                        "`{ident}` has no id field: mark the field that identifies a record with `#[audit(id)]` \
                         (a field named `id` is used by default)"
                    ),
                );
                None
            }
        },
        [_, rest @ ..] => {
            for extra in rest {
                errors.at(
                    extra.attrs.id.unwrap_or(extra.span),
                    "only one field can be `#[audit(id)]`",
                );
            }
            None
        }
    };

    let mut seen: Vec<&str> = Vec::new();
    for f in fields.iter().filter(|f| f.attrs.skip.is_none()) {
        if seen.contains(&f.name.as_str()) {
            let span = f.attrs.rename.as_ref().map_or(f.span, LitStr::span);
            errors.at(span, format!("two fields are named `{}` in the snapshot", f.name));
        }
        seen.push(&f.name);
    }

    let resource = match &resource_lit {
        Some(lit) if lit.value().trim().is_empty() => {
            errors.at(
                lit.span(),
                "the resource type is empty; name it, as in `#[audit(resource = \"customer\")]`",
            );
            String::new()
        }
        Some(lit) => lit.value(),
        None => snake_case(&input.ident.to_string()),
    };
    let actions = actions(&resource, named, &Origin::current(), errors);
    Some(Model {
        resource,
        id: id?,
        fields,
        input,
        actions,
    })
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.trim_start_matches("r#").chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

// ---- expand ----

fn expand(model: Model) -> TokenStream {
    let Model {
        input,
        resource,
        id,
        fields,
        actions: [create, update, delete],
    } = model;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let map = Ident::new("__audit_map", Span::mixed_site());

    let generic_names: Vec<String> = input.generics.type_params().map(|p| p.ident.to_string()).collect();
    let mentions_generic = |ty: &Type| {
        let text = quote!(#ty).to_string();
        generic_names
            .iter()
            .any(|g| text.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == g))
    };
    let mut bounds: Vec<TokenStream> = Vec::new();

    let mut inserts = Vec::new();
    let mut redacted = Vec::new();
    let mut skipped = Vec::new();
    for f in &fields {
        let name = &f.name;
        let member = &f.member;
        if f.attrs.skip.is_some() {
            skipped.push(name.clone());
            continue;
        }
        let ty = &f.ty;
        if mentions_generic(ty) {
            bounds.push(quote_spanned!(ty.span()=> #ty: ::audit::__private::Serialize));
        }
        if f.attrs.redact.is_some() {
            // A keyed fingerprint: a change shows, the value never does.
            redacted.push(name.clone());
            let value = quote_spanned!(f.span=> ::audit::__private::fingerprint(&self.#member));
            inserts.push(quote!(#map.insert(::std::string::String::from(#name), #value);));
            continue;
        }
        let value = quote_spanned!(f.span=> ::audit::__private::to_json(&self.#member));
        inserts.push(quote!(#map.insert(::std::string::String::from(#name), #value);));
    }
    let id_field = fields.iter().find(|f| f.member == id).expect("validated");
    let id_ty = &id_field.ty;
    if mentions_generic(id_ty) {
        bounds.push(quote_spanned!(id_ty.span()=> #id_ty: ::core::fmt::Display));
    }
    let id_value = quote_spanned!(id_field.span=> ::audit::__private::display(&self.#id));

    let where_clause = match (where_clause, bounds.is_empty()) {
        (w, true) => quote!(#w),
        (Some(w), false) => {
            let existing = w.predicates.iter();
            quote!(where #(#existing,)* #(#bounds,)*)
        }
        (None, false) => quote!(where #(#bounds,)*),
    };

    quote! {
        #[automatically_derived]
        impl #impl_generics ::audit::__private::AuditModel for #ident #ty_generics #where_clause {
            const RESOURCE_TYPE: &'static str = #resource;
            const REDACTED_FIELDS: &'static [&'static str] = &[#(#redacted),*];
            const SKIPPED_FIELDS: &'static [&'static str] = &[#(#skipped),*];
            const CREATE_ACTION: ::audit::__private::ModelAction = #create;
            const UPDATE_ACTION: ::audit::__private::ModelAction = #update;
            const DELETE_ACTION: ::audit::__private::ModelAction = #delete;

            fn audit_id(&self) -> ::std::string::String {
                #id_value
            }

            fn audit_snapshot(&self) -> ::audit::__private::serde_json::Value {
                #[allow(unused_mut)]
                let mut #map = ::audit::__private::serde_json::Map::new();
                #(#inserts)*
                ::audit::__private::serde_json::Value::Object(#map)
            }
        }
    }
}
