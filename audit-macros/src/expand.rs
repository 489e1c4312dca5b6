//! Generating the audited fn from a validated [`Plan`].
//!
//! The body runs in a closure (sync) or an `async move` block (async) so that `return` and
//! `?` stay inside it and the outcome can be inspected; its type is annotated with the fn's
//! return type, so type errors in the body point at the user's code. Values named in the
//! attribute are evaluated before the body (arguments may be moved into it), except those
//! starting with `return`, read from the returned value. All locals of the expansion have
//! mixed-site hygiene: the body cannot see them, nor they the body's.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Ident, ItemFn, LitStr};

use crate::parse::{Reason, Value};
use crate::validate::{Plan, Refusal, Returns};

struct Names {
    call: Ident,
    ret: Ident,
    value: Ident,
    event: Ident,
    refused: Ident,
    refusal: Ident,
}

impl Names {
    fn new() -> Self {
        let m = Span::mixed_site();
        Names {
            call: Ident::new("__audit_call", m),
            ret: Ident::new("__audit_ret", m),
            value: Ident::new("__audit_value", m),
            event: Ident::new("__audit_event", m),
            refused: Ident::new("__audit_refused", m),
            refusal: Ident::new("__audit_refusal", m),
        }
    }
}

/// The audited fn.
pub fn expand(plan: Plan) -> TokenStream {
    let n = Names::new();
    let Plan {
        func,
        action,
        category,
        deprecation,
        vocabulary,
        resource,
        actor,
        tenant,
        context,
        reason,
        refusal,
        returns,
        failure_status,
        into_response,
    } = plan;
    let ItemFn { attrs, vis, sig, block } = func;
    let is_async = sig.asyncness.is_some();
    let brace_span = block.brace_token.span.join();
    let action_lit = LitStr::new(&action.value(), action.span());
    let category = Ident::new(category.variant_name(), Span::call_site());
    let category = quote!(::audit::__private::Category::#category);

    // Rebuild when the vocabulary file or the variable pointing at it changes.
    let vocabulary = vocabulary.display().to_string();
    let tracking = quote! {
        const _: &[u8] = ::core::include_bytes!(#vocabulary);
        const _: ::core::option::Option<&str> = ::core::option_env!("AUDIT_VOCABULARY");
    };

    let deprecation = deprecation.map(|message| {
        let item = Ident::new("deprecated_audit_action", action.span());
        quote! {
            {
                #[deprecated(note = #message)]
                #[allow(non_upper_case_globals)]
                const #item: () = ();
                #[allow(clippy::let_unit_value)]
                let _ = #item;
            }
        }
    });

    // Values named in the attribute: those known before the body are evaluated into locals
    // first (the body may move the arguments), and given to the event when the call ends;
    // those read from the returned value are given to it after the body returned.
    let mut captures = TokenStream::new();
    let mut parts = TokenStream::new();
    let mut after = TokenStream::new();
    let value = &n.value;
    let mut index = 0;
    let mut add = |source: &Value,
                   capture: &dyn Fn(TokenStream) -> TokenStream,
                   set: &dyn Fn(TokenStream) -> TokenStream,
                   late: &dyn Fn(TokenStream) -> TokenStream| match source {
        Value::Before(expr) => {
            let local = Ident::new(&format!("__audit_part{index}"), Span::mixed_site());
            index += 1;
            let captured = capture(quote!(#expr));
            captures.extend(quote!(let #local = #captured;));
            parts.extend(set(quote!(#local)));
        }
        Value::Return { keyword, tail } => {
            let v = quote_spanned!(keyword.span=> #value);
            after.extend(late(quote!(#v #tail)));
        }
    };
    if let Some(actor) = &actor {
        let span = actor.span();
        add(
            actor,
            &|e| {
                let actor = Ident::new("__audit_actor", Span::mixed_site());
                let ty = quote_spanned!(span=> ::audit::__private::Actor);
                quote!({ let #actor: #ty = #e; #actor })
            },
            &|local| quote!(.actor(#local)),
            &|e| quote_spanned!(span=> .actor(::core::clone::Clone::clone(&(#e)))),
        );
    }
    if let Some(tenant) = &tenant {
        let span = tenant.span();
        add(
            tenant,
            &|e| quote_spanned!(span=> ::audit::__private::display(&(#e))),
            &|local| quote!(.tenant(#local)),
            &|e| quote_spanned!(span=> .tenant(::audit::__private::display(&(#e)))),
        );
    }
    if let Some((kind, id)) = &resource {
        let span = id.span();
        add(
            id,
            &|e| quote_spanned!(span=> ::audit::__private::resource(#kind, &(#e))),
            &|local| quote!(.with_resource(#local)),
            &|e| quote_spanned!(span=> .with_resource(::audit::__private::resource(#kind, &(#e)))),
        );
    }
    for entry in &context {
        let span = entry.value.span();
        let key = LitStr::new(&entry.key, entry.key_span);
        add(
            &entry.value,
            &|e| quote_spanned!(span=> ::audit::__private::display(&(#e))),
            &|local| quote!(.context(#key, #local)),
            &|e| quote_spanned!(span=> .context(#key, ::audit::__private::display(&(#e)))),
        );
    }

    let mode = match refusal {
        Refusal::Closed(_) => quote!(::core::option::Option::Some(::audit::__private::FailureMode::Refuse)),
        Refusal::Runtime => quote!(::core::option::Option::None),
        Refusal::Open => quote!(::core::option::Option::Some(::audit::__private::FailureMode::Warn)),
    };
    let refusal = refusal_check(
        &refusal,
        &returns,
        into_response,
        borrows(&sig.output),
        &n,
        &action_lit,
        &category,
    );
    let resource_kind = match &resource {
        Some((kind, _)) => quote!(::core::option::Option::Some(#kind)),
        None => quote!(::core::option::Option::None),
    };
    let failure_status = match &failure_status {
        Some(f) => {
            let span = syn::spanned::Spanned::span(f);
            quote_spanned!(span=> { let __audit_status: fn(u16) -> bool = #f; __audit_status })
        }
        None => quote!(::audit::__private::default_failure_status),
    };

    let Names { call, ret, event, .. } = &n;
    let needs_update = !after.is_empty();
    let http = Ident::new("__audit_http", Span::mixed_site());
    let success = quote!(#call.success(|#event: ::audit::__private::AuditEvent| #event #after, #http););
    // What the returned value says of an HTTP response: the most specific of a known status,
    // any response, or none (autoref specialization on the value's concrete type). A borrowed
    // return value is not probed: trait selection ignores lifetimes, so `&'a str` would pick
    // the impl for `&'static str` responses and then demand `'a: 'static`.
    let borrowed = borrows(&sig.output);
    let probe = if borrowed {
        quote!(let #http = ::audit::__private::HttpShape::NotHttp;)
    } else {
        quote! {
            let #http = {
                #[allow(unused_imports)]
                use ::audit::__private::{ProbeOther as _, ProbeResponse as _, ProbeStatus as _};
                (&&&::audit::__private::Probe(&#ret)).audit_http()
            };
        }
    };
    let parts = if parts.is_empty() {
        quote!(|#event: ::audit::__private::AuditEvent| #event)
    } else {
        quote!(move |#event: ::audit::__private::AuditEvent| #event #parts)
    };

    let outcome = match &returns {
        Returns::Result { span, .. } => {
            // Bound with the error type's span (and so call-site hygiene: nothing of the user's
            // is in scope here but the `reason` fn), so that a missing `Display` points there.
            let error = &Ident::new("__audit_error", *span);
            let reason = match &reason {
                None => quote_spanned!(*span=> {
                    #[allow(unused_imports)]
                    use ::audit::__private::{ReasonDisplay as _, ReasonResponse as _, ReasonStatus as _};
                    (&&&::audit::__private::ReasonOf(#error)).audit_reason()
                }),
                Some(Reason::Text(text)) => quote!(::audit::__private::display(#text)),
                Some(Reason::With(f)) => {
                    let span = syn::spanned::Spanned::span(f);
                    quote_spanned!(span=> ::audit::__private::reason_with(#error, #f))
                }
            };
            let ok = if needs_update { quote!(#value) } else { quote!(_) };
            quote! {
                match &#ret {
                    ::core::result::Result::Ok(#ok) => {
                        #success
                    }
                    ::core::result::Result::Err(#error) => #call.failure(#reason, #http),
                }
            }
        }
        Returns::Value { .. } if needs_update => quote! {
            {
                let #value = &#ret;
                #success
            }
        },
        _ => success,
    };

    let annotation = match &returns {
        Returns::Nothing => quote!(()),
        Returns::Result { annotation, .. } | Returns::Value { annotation } => quote!(#annotation),
    };

    let return_span = match &sig.output {
        syn::ReturnType::Type(_, ty) => syn::spanned::Spanned::span(ty),
        syn::ReturnType::Default => Span::call_site(),
    };
    let fake_return = quote_spanned!(return_span=> return __audit_fake_return;);
    let run = if is_async {
        // The fake return fixes the async block's output type before the body is checked, so
        // that a type error in the body points at the user's expression.
        quote! {
            #captures
            let #call = ::audit::__private::Call::new_async(#action_lit, #category, #mode, #resource_kind, #failure_status, #parts);
            let (#ret, #call) = ::audit::__private::audited(#call, async move {
                #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::empty_loop, clippy::let_unit_value, clippy::let_with_type_underscore)]
                if false {
                    let __audit_fake_return: #annotation = loop {};
                    #fake_return
                }
                #block
            }).await;
        }
    } else {
        quote! {
            #captures
            let #call = ::audit::__private::Call::new(#action_lit, #category, #mode, #resource_kind, #failure_status, #parts);
            let #ret = #call.run(move || -> #annotation #block);
        }
    };
    // `-> impl IntoResponse`: the value becomes the response it stands for, whose status is
    // then known (needs the `axum` feature of audit-log).
    let convert = into_response.then(|| quote!(let #ret = ::audit::__private::into_response(#ret);));

    let body = quote! {
        #tracking
        #deprecation
        #refusal
        #run
        #convert
        #probe
        #outcome
        #ret
    };
    // The braces keep the span of the original body, for lints and tools that point at it.
    let mut body = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, body);
    body.set_span(brace_span);
    quote! {
        #(#attrs)*
        #vis #sig #body
    }
}

/// The fail-closed check before the body (nothing for `fail_open`).
fn refusal_check(
    refusal: &Refusal,
    returns: &Returns,
    into_response: bool,
    borrowed: bool,
    n: &Names,
    action: &LitStr,
    category: &TokenStream,
) -> TokenStream {
    let Names {
        refused, refusal: r, ..
    } = n;
    let is_result = matches!(returns, Returns::Result { .. });
    let mode = match refusal {
        Refusal::Closed(_) => quote!(::core::option::Option::Some(::audit::__private::FailureMode::Refuse)),
        _ => quote!(::core::option::Option::None),
    };
    match refusal {
        Refusal::Open => TokenStream::new(),
        // A handler answers 503 instead of running.
        _ if into_response => quote! {
            if let ::core::result::Result::Err(#refused) = ::audit::__private::ensure_sink(#mode) {
                ::audit::__private::refused_attempt(#action, #category);
                return ::audit::__private::refusal_response(#refused);
            }
        },
        Refusal::Closed(span) if is_result => {
            // Spanned at `fail_closed` so that a missing `From<AuditError>` points there.
            let refused = Ident::new("__audit_refused", *span);
            let convert = quote_spanned!(*span=> ::core::convert::From::from(#refused));
            quote! {
                if let ::core::result::Result::Err(#refused) = ::audit::__private::ensure_sink(
                    ::core::option::Option::Some(::audit::__private::FailureMode::Refuse),
                ) {
                    ::audit::__private::refused_attempt(#action, #category);
                    return ::core::result::Result::Err(#convert);
                }
            }
        }
        Refusal::Runtime if is_result => quote! {
            if let ::core::result::Result::Err(#refused) = ::audit::__private::ensure_sink(::core::option::Option::None) {
                #[allow(unused_imports)]
                use ::audit::__private::{RefuseWithError as _, RefuseWithPanic as _, RefuseWithResponse as _};
                let #r = ::audit::__private::Refusal::new(#action, #category, #refused);
                if false {
                    // Names the error type of the fn for the line below.
                    return ::core::result::Result::Err(#r.error_type());
                }
                return ::core::result::Result::Err((&&&#r).audit_refusal());
            }
        },
        // Another return type answers the refusal where it can (a 503 response), else panics.
        Refusal::Closed(_) | Refusal::Runtime => match returns {
            Returns::Value { annotation } if !infers(annotation) && !borrowed => quote! {
                if let ::core::result::Result::Err(#refused) = ::audit::__private::ensure_sink(#mode) {
                    #[allow(unused_imports)]
                    use ::audit::__private::{RefuseAsPanic as _, RefuseAsValue as _};
                    let #r = ::audit::__private::Refused::<#annotation>::new(#action, #category, #refused);
                    return (&&#r).audit_refusal();
                }
            },
            _ => quote! {
                if let ::core::result::Result::Err(#refused) = ::audit::__private::ensure_sink(#mode) {
                    ::audit::__private::refuse_by_panic(#action, #category, #refused);
                }
            },
        },
    }
}

/// True when a type annotation leaves part of the type to inference (`impl Trait`, `!`):
/// such a return type cannot be named to build a refusal of it.
fn infers(ty: &syn::Type) -> bool {
    struct Finds(bool);
    impl<'a> syn::visit::Visit<'a> for Finds {
        fn visit_type_infer(&mut self, _: &'a syn::TypeInfer) {
            self.0 = true;
        }
    }
    let mut finds = Finds(false);
    syn::visit::Visit::visit_type(&mut finds, ty);
    finds.0
}

/// True when the return type holds a reference or a lifetime (see the probe in [`expand`]).
fn borrows(output: &syn::ReturnType) -> bool {
    struct Finds(bool);
    impl<'a> syn::visit::Visit<'a> for Finds {
        fn visit_type_reference(&mut self, _: &'a syn::TypeReference) {
            self.0 = true;
        }
        fn visit_lifetime(&mut self, _: &'a syn::Lifetime) {
            self.0 = true;
        }
    }
    let mut finds = Finds(false);
    syn::visit::Visit::visit_return_type(&mut finds, output);
    finds.0
}
