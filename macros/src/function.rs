//! `#[serfn::function]` on a plain fn whose leading `#[capture]` parameters
//! are bound when the function is made: a capture struct named like the fn,
//! its impl, its registration, and a constructor in place of the fn.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, FnArg, ItemFn, Meta, Pat, PatType, Path, ReturnType, Type};

use crate::ast::{self, Arg, By, CallImpl, Capture, Kind, Registration};
use crate::parse::{Args, Errors};
use crate::symbol::CAPTURE;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = Args::parse_attribute(args, &mut errors);
    let mut item: ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(error) => {
            errors.push(syn::Error::new(
                error.span(),
                "`#[serfn::function]` goes on a fn",
            ));
            return errors.fallback(input);
        }
    };
    let mut item_errors = Errors::default();
    let function = Function::from_item(&item, &mut item_errors);
    if item_errors.is_empty() {
        // Errors in the arguments alone still leave a working function.
        return errors.fallback(function.expand(&args));
    }
    errors.append(item_errors);
    // One mistake, one error: callers still find a constructor of the
    // right type when the signature is known, or else the fn as written,
    // minus the attribute only this macro knows.
    if function.signature_known {
        return errors.fallback(function.stub(&args));
    }
    for input in &mut item.sig.inputs {
        if let FnArg::Typed(typed) = input {
            typed.attrs.retain(|attr| !attr.path().is_ident(CAPTURE));
        }
    }
    errors.fallback(item)
}

/// An `async fn` is an `AsyncCall`: its future borrows the capture, so
/// each `#[capture]` is a `&T`.
fn async_kind(captures: &[Capture], errors: &mut Errors) -> Kind {
    for capture in captures.iter().filter(|c| c.by != By::Ref) {
        errors.error(
            &capture.ident,
            format_args!(
                "an async `#[serfn::function]` takes its captures by reference: write `{}: &{}`",
                capture.ident,
                ast::compact(&capture.ty)
            ),
        );
    }
    Kind::AsyncCall
}

/// A fn split into what the expansion needs.
struct Function<'a> {
    item: &'a ItemFn,
    captures: Vec<Capture>,
    args: Vec<Arg>,
    output: Type,
    kind: Kind,
    /// Whether the constructor's signature is known despite the errors.
    signature_known: bool,
}

impl<'a> Function<'a> {
    /// The fn's parts, as far as they are valid; every error in `errors`.
    fn from_item(item: &'a ItemFn, errors: &mut Errors) -> Self {
        let sig = &item.sig;
        let unsupported = [
            sig.constness.as_ref().map(|t| (t.span, "`const fn`")),
            match &sig.safety {
                syn::Safety::Unsafe(t) => Some((t.span, "`unsafe fn`")),
                _ => None,
            },
            sig.abi
                .as_ref()
                .map(|abi| (abi.extern_token.span, "`extern fn`")),
            sig.variadic
                .as_ref()
                .map(|v| (v.dots.spans[0], "a variadic fn")),
        ];
        for (span, what) in unsupported.into_iter().flatten() {
            errors.error_at(
                span,
                format_args!("`#[serfn::function]` does not support {what}"),
            );
        }
        let mut signature_known = true;
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            signature_known = false;
            errors.error(
                &sig.generics,
                "`#[serfn::function]` does not support generics: a registered function has one concrete signature. \
                 Write a capture struct and register each concrete type with `serfn::register_instance!`",
            );
        }

        let mut captures = Vec::new();
        let mut args = Vec::new();
        for input in &sig.inputs {
            let typed = match input {
                FnArg::Typed(typed) => typed,
                FnArg::Receiver(receiver) => {
                    signature_known = false;
                    errors.error(
                        receiver,
                        "`#[serfn::function]` goes on free functions, without `self`; \
                         capture the value with a `#[capture]` parameter instead",
                    );
                    continue;
                }
            };
            signature_known &= ast::check_concrete(
                &typed.ty,
                "the parameters of a `#[serfn::function]`",
                errors,
            );
            match capture_attr(&typed.attrs, errors) {
                Some(attr) => {
                    if let Some(Arg { pat, .. }) = args.first() {
                        errors.error(
                            attr,
                            format_args!(
                                "`#[capture]` parameters come first: they are bound when the function is made, \
                                 and the arguments, from `{}` on, are passed at each call",
                                ast::compact(pat)
                            ),
                        );
                    }
                    match capture(typed, errors) {
                        Some(capture) => captures.push(capture),
                        None => signature_known = false,
                    }
                }
                None => args.push(Arg {
                    pat: (*typed.pat).clone(),
                    ty: (*typed.ty).clone(),
                }),
            }
        }
        ast::check_shadowing(&captures, &args, errors);

        let output = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => {
                signature_known &=
                    ast::check_concrete(ty, "the return type of a `#[serfn::function]`", errors);
                (**ty).clone()
            }
        };
        let kind = match &sig.asyncness {
            Some(_) => async_kind(&captures, errors),
            None => captures
                .iter()
                .map(|c| c.by.kind())
                .max()
                .unwrap_or(Kind::Call),
        };
        Function {
            item,
            captures,
            args,
            output,
            kind,
            signature_known,
        }
    }

    /// The constructor's signature: `#vis fn name(captures) -> Handle<Args, Output>`,
    /// with its attributes.
    fn constructor_signature(&self, krate: &Path, params: TokenStream) -> TokenStream {
        let ItemFn {
            attrs, vis, sig, ..
        } = self.item;
        let ident = &sig.ident;
        let is =
            |attr: &Attribute, names: &[&str]| names.iter().any(|name| attr.path().is_ident(name));
        // Docs describe the constructor, and lints apply to both it and the body.
        let cfgs = ast::cfgs(attrs);
        let attrs = attrs
            .iter()
            .filter(|attr| is(attr, CONSTRUCTOR_ATTRS) || is(attr, LINT_ATTRS));
        let handle = self.kind.handle();
        let args_ty = ast::args_type(&self.args);
        let output = &self.output;
        quote! {
            #(#cfgs)*
            #(#attrs)*
            #vis fn #ident(#params) -> #krate::#handle<#args_ty, #output>
        }
    }

    /// A constructor that compiles, for when the expansion cannot.
    fn stub(&self, args: &Args) -> TokenStream {
        let krate = ast::krate(args);
        let types = self.captures.iter().map(|capture| &capture.ty);
        let signature = self.constructor_signature(&krate, quote!(#(_: #types),*));
        quote! {
            #signature {
                ::core::unimplemented!()
            }
        }
    }

    fn expand(&self, args: &Args) -> TokenStream {
        let krate = ast::krate(args);
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
            ..
        } = self.item;
        let ident = &sig.ident;
        let kind = self.kind;

        // `cfg` applies to everything, codegen attributes (`inline`, ...) to
        // the body.
        let cfgs = ast::cfgs(attrs);
        let method_attrs: Vec<Attribute> = attrs
            .iter()
            .filter(|attr| {
                let path = attr.path();
                !CONSTRUCTOR_ATTRS.iter().any(|name| path.is_ident(name))
                    && !path.is_ident("cfg")
                    && !path.is_ident("cfg_attr")
            })
            .cloned()
            .collect();

        let struct_doc = format!("The capture of the serializable function [`{ident}`]({ident}()), made by that function.");
        let checks = ast::capture_checks(&krate, &cfgs, &self.captures);
        let capture_struct = ast::capture_struct(
            &krate,
            sig.paren_token.span.join(),
            quote!(#(#cfgs)* #[doc = #struct_doc]),
            vis,
            ident,
            &self.captures,
        );
        let call_impl = CallImpl {
            krate: &krate,
            kind,
            self_ty: ident,
            captures: &self.captures,
            args: &self.args,
            output: &self.output,
            method_attrs: &method_attrs,
            body: block,
        }
        .to_tokens();
        let registration = Registration {
            krate: &krate,
            args,
            default_suffix: ident.to_string(),
            cfgs: cfgs.clone(),
        };
        let register = registration.register(kind, ident, &ast::args_type(&self.args));
        let guard = registration.name_guard();

        let handle = kind.handle();
        let names: Vec<_> = self.captures.iter().map(|capture| &capture.ident).collect();
        let types = self.captures.iter().map(|capture| &capture.ty);
        let constructor = self.constructor_signature(&krate, quote!(#(#names: #types),*));
        quote! {
            #checks
            #capture_struct

            #(#cfgs)*
            #call_impl

            #register
            #guard

            #constructor {
                #krate::#handle::new(#ident { #(#names),* })
            }
        }
    }
}

/// Attributes of the fn that go on the constructor only.
const CONSTRUCTOR_ATTRS: &[&str] = &["doc", "deprecated", "must_use"];

/// Lint attributes, which go on both the constructor and the body.
const LINT_ATTRS: &[&str] = &["allow", "warn", "deny", "forbid", "expect"];

/// The parameter's `#[capture]`, if it has one; any other attribute is an error.
fn capture_attr<'a>(attrs: &'a [Attribute], errors: &mut Errors) -> Option<&'a Attribute> {
    let mut found = None;
    for attr in attrs {
        if !attr.path().is_ident(CAPTURE) {
            errors.error(
                attr,
                "only `#[capture]` is supported on the parameters of a `#[serfn::function]`",
            );
        } else if !matches!(attr.meta, Meta::Path(_)) {
            errors.error(&attr.meta, "`#[capture]` takes no arguments");
        } else if found.is_some() {
            errors.error(attr, "duplicate `#[capture]`");
        } else {
            found = Some(attr);
        }
    }
    found
}

/// A `#[capture] name: &T` parameter (or `&mut T`, or `T`) as a field.
fn capture(typed: &PatType, errors: &mut Errors) -> Option<Capture> {
    let (mutability, ident) = match &*typed.pat {
        Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
            (pat.mutability, pat.ident.clone())
        }
        pat => {
            errors.error(
                pat,
                "a `#[capture]` parameter needs a plain name, `#[capture] name: &T`: it becomes a field of the capture struct",
            );
            return None;
        }
    };
    let (ty, by) = match &*typed.ty {
        Type::Reference(reference) if reference.mutability.is_some() => {
            ((*reference.elem).clone(), By::Mut)
        }
        Type::Reference(reference) => ((*reference.elem).clone(), By::Ref),
        ty => (ty.clone(), By::Value),
    };
    Some(Capture {
        mutability,
        ident,
        ty,
        by,
    })
}
