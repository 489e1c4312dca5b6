//! `action!("...")` and `vocabulary!()`: the vocabulary as values, checked at compile time.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::LitStr;
use syn::parse::{Parse, ParseStream};

use crate::errors::Errors;
use crate::validate::check_action;
use crate::vocab::{self, Origin};

/// The argument of `action!`: an action name.
pub struct ActionArg(pub LitStr);

impl Parse for ActionArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lit: LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the action's name, as in `audit::action!(\"billing.update\")`",
            )
        })?;
        if !input.is_empty() {
            return Err(input.error("`action!` takes the action's name only"));
        }
        Ok(ActionArg(lit))
    }
}

/// `::audit::__private::Action` for a declared action, or the error of an unknown one.
pub fn action(arg: ActionArg, origin: &Origin) -> TokenStream {
    let mut errors = Errors::default();
    let Some((category, deprecation, path)) = check_action(&arg.0, None, origin, &mut errors) else {
        return errors.into_error().map(|e| e.to_compile_error()).unwrap_or_default();
    };
    let name = &arg.0;
    let category = syn::Ident::new(category.variant_name(), Span::call_site());
    let path = path.display().to_string();
    let deprecation = deprecation.map(|message| {
        let item = syn::Ident::new("deprecated_audit_action", name.span());
        quote! {
            #[deprecated(note = #message)]
            #[allow(non_upper_case_globals)]
            const #item: () = ();
            #[allow(clippy::let_unit_value)]
            let _ = #item;
        }
    });
    quote! {
        {
            // Rebuild when the vocabulary changes.
            const _: &[u8] = ::core::include_bytes!(#path);
            #deprecation
            ::audit::__private::Action::__checked(#name, ::audit::__private::Category::#category)
        }
    }
}

/// `::audit::__private::CompiledVocabulary` of the crate's `audit.toml`.
pub fn vocabulary(input: TokenStream, origin: &Origin) -> TokenStream {
    if !input.is_empty() {
        return syn::Error::new_spanned(input, "`vocabulary!()` takes no arguments").to_compile_error();
    }
    let path = match vocab::locate(origin, None) {
        Ok(path) => path,
        Err(e) => {
            return syn::Error::new(Span::call_site(), vocab::not_found_message(&e, None)).to_compile_error();
        }
    };
    let loaded = match vocab::load(&path) {
        Ok(loaded) => loaded,
        Err(message) => return syn::Error::new(Span::call_site(), message).to_compile_error(),
    };
    let mut actions: Vec<_> = loaded.vocab.actions().collect();
    actions.sort_by(|a, b| a.name.cmp(&b.name));
    let entries = actions.iter().map(|a| {
        let name = &a.name;
        let category = syn::Ident::new(a.category.variant_name(), Span::call_site());
        let deprecated = match &a.deprecated {
            Some(d) => {
                let message = d.message(name);
                quote!(::core::option::Option::Some(#message))
            }
            None => quote!(::core::option::Option::None),
        };
        quote! {
            ::audit::__private::VocabularyEntry {
                name: #name,
                category: ::audit::__private::Category::#category,
                deprecated: #deprecated,
            }
        }
    });
    let path = loaded.path.display().to_string();
    quote! {
        {
            const _: &[u8] = ::core::include_bytes!(#path);
            ::audit::__private::CompiledVocabulary::__new(&[#(#entries),*], #path)
        }
    }
}
