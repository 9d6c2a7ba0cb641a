//! The model the three macros share, and the code generation built on it:
//! the kind of a function, its captures and arguments, its registration.

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::visit::Visit;
use syn::{Attribute, Block, Ident, LitStr, Pat, Path, Token, Type, Visibility};

use crate::parse::{Args, Errors};

/// Which typed trait a capture struct implements, ordered from the most to
/// the least permissive for its callers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Kind {
    Call,
    CallMut,
    CallOnce,
    /// `AsyncCall`: through `&self`, awaited; apart from the three above.
    AsyncCall,
}

impl Kind {
    pub(crate) fn from_trait_name(ident: &Ident) -> Option<Kind> {
        match ident.to_string().as_str() {
            "Call" => Some(Kind::Call),
            "CallMut" => Some(Kind::CallMut),
            "CallOnce" => Some(Kind::CallOnce),
            "AsyncCall" => Some(Kind::AsyncCall),
            _ => None,
        }
    }

    /// The trait, also the `kind` of `register_erased!`.
    pub(crate) fn trait_ident(self) -> Ident {
        let name = match self {
            Kind::Call => "Call",
            Kind::CallMut => "CallMut",
            Kind::CallOnce => "CallOnce",
            Kind::AsyncCall => "AsyncCall",
        };
        Ident::new(name, Span::call_site())
    }

    fn method(self) -> Ident {
        let name = match self {
            Kind::Call | Kind::AsyncCall => "call",
            Kind::CallMut => "call_mut",
            Kind::CallOnce => "call_once",
        };
        Ident::new(name, Span::call_site())
    }

    /// The typed handle the constructors return.
    pub(crate) fn handle(self) -> Ident {
        let name = match self {
            Kind::Call => "SerFn",
            Kind::CallMut => "SerFnMut",
            Kind::CallOnce => "SerFnOnce",
            Kind::AsyncCall => "AsyncSerFn",
        };
        Ident::new(name, Span::call_site())
    }
}

/// How the body sees a capture: as `&T`, `&mut T` or `T`, like a closure's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum By {
    Ref,
    Mut,
    Value,
}

impl By {
    /// The least permissive kind that can give a capture this way.
    pub(crate) fn kind(self) -> Kind {
        match self {
            By::Ref => Kind::Call,
            By::Mut => Kind::CallMut,
            By::Value => Kind::CallOnce,
        }
    }

    /// How every capture of a closure of `kind` is seen.
    pub(crate) fn of(kind: Kind) -> By {
        match kind {
            Kind::Call | Kind::AsyncCall => By::Ref,
            Kind::CallMut => By::Mut,
            Kind::CallOnce => By::Value,
        }
    }
}

/// One captured variable: a field of the capture struct, bound by name in
/// the body.
pub(crate) struct Capture {
    /// `mut` on the binding in the body.
    pub(crate) mutability: Option<Token![mut]>,
    pub(crate) ident: Ident,
    /// The field's type.
    pub(crate) ty: Type,
    pub(crate) by: By,
}

/// One argument of the call: a pattern and its type.
pub(crate) struct Arg {
    pub(crate) pat: Pat,
    pub(crate) ty: Type,
}

/// The path of serfn in generated code.
pub(crate) fn krate(args: &Args) -> Path {
    args.krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::serfn))
}

/// The capture struct: `#vis struct #ident { fields }`, serde through
/// serfn's re-export. Errors of the serde derives that have no better place
/// (a capture type that is not serde) point at `derive_span`.
pub(crate) fn capture_struct(
    krate: &Path,
    derive_span: Span,
    attrs: TokenStream,
    vis: &Visibility,
    ident: &Ident,
    captures: &[Capture],
) -> TokenStream {
    let serde = quote!(#krate::__private::serde);
    let derive = respan(
        quote!(#[derive(#serde::Serialize, #serde::Deserialize)]),
        derive_span,
    );
    let serde_path = LitStr::new(
        &format!("{}::__private::serde", compact(krate)),
        Span::call_site(),
    );
    let fields = captures
        .iter()
        .map(|Capture { ident, ty, .. }| quote!(#ident: #ty));
    quote! {
        #attrs
        #derive
        #[serde(crate = #serde_path)]
        #[allow(non_camel_case_types)]
        #vis struct #ident {
            #(#fields,)*
        }
    }
}

/// Asserts that each capture type is serde data, `Send + 'static` and
/// `Sync`, spanned at the type: placed before the capture struct and its
/// impls, it gives the first errors, serfn's own, instead of rustc's from
/// inside serde's derive or the impls that need `Send + Sync`.
///
/// Each check is a field type `<Ty as Check<Need>>::Checked`: see
/// `serfn::__private::CaptureData` for why this form.
pub(crate) fn capture_checks(
    krate: &Path,
    cfgs: &[&Attribute],
    captures: &[Capture],
) -> TokenStream {
    if captures.is_empty() {
        return TokenStream::new();
    }
    let needs = ["Send", "Sync", "Data"];
    let fields = captures.iter().flat_map(|Capture { ty, .. }| {
        // The first and last tokens of the type: the check spans them both,
        // so that rustc underlines the whole type.
        let tokens: Vec<TokenTree> = ty.to_token_stream().into_iter().collect();
        let first = tokens.first().map_or_else(Span::call_site, TokenTree::span);
        let last = tokens.last().map_or(first, TokenTree::span);
        needs.iter().map(move |name| {
            let need = Ident::new(name, last);
            let krate = respan(krate.to_token_stream(), last);
            let open = quote_spanned!(first=> <);
            quote_spanned!(last=> #open #ty as #krate::__private::Check<#krate::__private::need::#need>>::Checked)
        })
    });
    quote! {
        #(#cfgs)*
        const _: () = {
            #[allow(dead_code)]
            struct __SerfnCaptureChecks(#(#fields),*);
        };
    }
}

/// The impl of `Call`, `CallMut` or `CallOnce` for the capture struct: the
/// captures bound by name, the arguments by their patterns, then the body.
pub(crate) struct CallImpl<'a> {
    pub(crate) krate: &'a Path,
    pub(crate) kind: Kind,
    pub(crate) self_ty: &'a Ident,
    pub(crate) captures: &'a [Capture],
    pub(crate) args: &'a [Arg],
    pub(crate) output: &'a Type,
    pub(crate) method_attrs: &'a [Attribute],
    /// The user's body, spans untouched so that errors inside it point at
    /// the user's code.
    pub(crate) body: &'a Block,
}

impl CallImpl<'_> {
    pub(crate) fn to_tokens(&self) -> TokenStream {
        let CallImpl {
            krate,
            kind,
            self_ty,
            output,
            method_attrs,
            body,
            ..
        } = self;
        // `self` resolves at the macro's definition site, so a `self` in the
        // user's body cannot silently mean the capture struct.
        let this = quote_spanned!(Span::mixed_site()=> self);
        if *kind == Kind::AsyncCall {
            return self.async_tokens(&this);
        }
        let receiver = match kind {
            Kind::Call | Kind::AsyncCall => quote!(&#this),
            Kind::CallMut => quote!(&mut #this),
            Kind::CallOnce if self.captures.iter().any(|c| c.by == By::Mut) => quote!(mut #this),
            Kind::CallOnce => quote!(#this),
        };
        let bindings = self.captures.iter().map(
            |Capture {
                 mutability,
                 ident,
                 by,
                 ..
             }| {
                let access = match by {
                    By::Ref => quote!(&#this.#ident),
                    By::Mut => quote!(&mut #this.#ident),
                    By::Value => quote!(#this.#ident),
                };
                quote!(let #mutability #ident = #access;)
            },
        );
        // The method's block is the user's (its braces keep their spans, for
        // errors such as a missing tail expression), with the bindings first.
        let stmts = &body.stmts;
        let mut block = Group::new(Delimiter::Brace, quote!(#(#bindings)* #(#stmts)*));
        block.set_span(body.brace_token.span.join());
        let (param, args_ty) = args_param(self.args);
        let trait_ident = kind.trait_ident();
        let method = kind.method();
        quote! {
            #[automatically_derived]
            impl #krate::#trait_ident<#args_ty> for #self_ty {
                type Output = #output;

                #(#method_attrs)*
                fn #method(#receiver, #param) -> #output #block
            }
        }
    }
}

impl CallImpl<'_> {
    /// The impl of `AsyncCall`: the captures bound by reference, then the
    /// body as an `async move` block, which owns the arguments and borrows
    /// the capture for as long as the future lives.
    fn async_tokens(&self, this: &TokenStream) -> TokenStream {
        let CallImpl {
            krate,
            self_ty,
            output,
            method_attrs,
            body,
            ..
        } = self;
        let bindings = self
            .captures
            .iter()
            .map(|Capture { ident, .. }| quote!(let #ident = &#this.#ident;));
        let stmts = &body.stmts;
        let mut block = Group::new(Delimiter::Brace, quote!(#(#stmts)*));
        block.set_span(body.brace_token.span.join());
        let (param, args_ty) = args_param(self.args);
        quote! {
            #[automatically_derived]
            impl #krate::AsyncCall<#args_ty> for #self_ty {
                type Output = #output;

                #(#method_attrs)*
                #[allow(clippy::manual_async_fn)]
                fn call(&#this, #param) -> impl ::core::future::Future<Output = #output> + ::core::marker::Send {
                    #(#bindings)*
                    async move #block
                }
            }
        }
    }
}

/// The argument type: `()`, `T`, or the tuple `(T, U, ...)`.
pub(crate) fn args_type(args: &[Arg]) -> TokenStream {
    args_param(args).1
}

/// The call's parameter (`pattern: Type`) and the argument type.
fn args_param(args: &[Arg]) -> (TokenStream, TokenStream) {
    match args {
        [] => (quote!((): ()), quote!(())),
        [Arg { pat, ty }] => (quote!(#pat: #ty), ty.to_token_stream()),
        _ => {
            let pats = args.iter().map(|arg| &arg.pat);
            let tys: Vec<&Type> = args.iter().map(|arg| &arg.ty).collect();
            (quote!((#(#pats,)*): (#(#tys,)*)), quote!((#(#tys,)*)))
        }
    }
}

/// The name, version and crate path of one registration.
pub(crate) struct Registration<'a> {
    pub(crate) krate: &'a Path,
    pub(crate) args: &'a Args,
    /// Appended to the module path when no name is given.
    pub(crate) default_suffix: String,
    /// The item's `#[cfg]`s, repeated on the generated items.
    pub(crate) cfgs: Vec<&'a Attribute>,
}

impl Registration<'_> {
    /// `register_erased!` for `ty`, implementing `kind` for `args_ty`.
    pub(crate) fn register(
        &self,
        kind: Kind,
        ty: &dyn ToTokens,
        args_ty: &dyn ToTokens,
    ) -> TokenStream {
        let Registration { krate, cfgs, .. } = self;
        let kind = kind.trait_ident();
        let name = match &self.args.name {
            Some(name) => name.to_token_stream(),
            None => {
                let suffix = &self.default_suffix;
                quote!(#krate::__private::concat!(#krate::__private::module_path!(), "::", #suffix))
            }
        };
        let version = match self.args.version {
            Some((value, span)) => {
                let mut literal = Literal::u32_unsuffixed(value);
                literal.set_span(span);
                literal.into_token_stream()
            }
            None => quote!(1),
        };
        quote! {
            #(#cfgs)*
            #krate::__private::register_erased! {
                kind: #kind,
                ty: #ty,
                args: #args_ty,
                name: #name,
                version: #version,
            }
        }
    }

    /// With an explicit name, a unit struct named after it, spanned at the
    /// name: two registrations of one name in a module then fail to compile
    /// with "defined multiple times" at the second name. Default names
    /// include the item's own name, which is unique in its module.
    pub(crate) fn name_guard(&self) -> TokenStream {
        let Some(name) = &self.args.name else {
            return TokenStream::new();
        };
        let value = name.value();
        let ident = Ident::new(
            &format!("__serfn_name_{}_{:08x}", sanitize(&value), fnv1a(&value)),
            name.span(),
        );
        let cfgs = &self.cfgs;
        // Every token at the name, so that rustc points there.
        quote_spanned! {name.span()=>
            #(#cfgs)*
            #[doc(hidden)]
            #[allow(non_camel_case_types, dead_code)]
            struct #ident;
        }
    }
}

/// The `#[cfg]` and `#[cfg_attr]` attributes among `attrs`.
pub(crate) fn cfgs(attrs: &[Attribute]) -> Vec<&Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr"))
        .collect()
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                tree = TokenTree::Group(respanned);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// `text` reduced to identifier characters, for generated names.
pub(crate) fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A stable 32-bit hash (FNV-1a), to tell apart names that sanitize alike.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Tokens as source text, without the spaces `to_string` puts between
/// tokens, except those that separate two words (`dyn Trait`).
pub(crate) fn compact(tokens: &dyn ToTokens) -> String {
    let spaced = tokens.to_token_stream().to_string();
    let chars: Vec<char> = spaced.chars().collect();
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    let mut out = String::with_capacity(spaced.len());
    for (i, c) in chars.iter().enumerate() {
        if c.is_whitespace() && !(word(out.chars().last().as_ref()) && word(chars.get(i + 1))) {
            continue;
        }
        out.push(*c);
    }
    out
}

/// Reports `impl Trait` and `_` inside `ty`, a registered signature being
/// concrete; whether there were none.
pub(crate) fn check_concrete(ty: &Type, what: &str, errors: &mut Errors) -> bool {
    struct Finder<'a> {
        what: &'a str,
        errors: &'a mut Errors,
        found: bool,
    }

    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_impl_trait(&mut self, ty: &'ast syn::TypeImplTrait) {
            self.found = true;
            self.errors.error(
                ty,
                format_args!(
                    "`impl Trait` is not supported in {}: a registered function has one concrete signature; name the type",
                    self.what
                ),
            );
        }

        fn visit_type_infer(&mut self, ty: &'ast syn::TypeInfer) {
            self.found = true;
            self.errors.error(
                ty,
                format_args!(
                    "`_` is not supported in {}: a registered function has one concrete signature; name the type",
                    self.what
                ),
            );
        }
    }

    let mut finder = Finder {
        what,
        errors,
        found: false,
    };
    finder.visit_type(ty);
    !finder.found
}

/// Reports an argument bound by the same name as a capture, which the
/// capture would silently shadow.
pub(crate) fn check_shadowing(captures: &[Capture], args: &[Arg], errors: &mut Errors) {
    for arg in args {
        if let Pat::Ident(pat) = &arg.pat {
            if captures.iter().any(|capture| capture.ident == pat.ident) {
                errors.error(
                    &pat.ident,
                    format_args!(
                        "`{}` is both a capture and an argument; rename one of them",
                        pat.ident
                    ),
                );
            }
        }
    }
}

/// `__serfn_<what>_<name>`, for generated items.
pub(crate) fn generated_ident(what: &str, name: &str) -> Ident {
    format_ident!("__serfn_{}_{}", what, sanitize(name))
}
