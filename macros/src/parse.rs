//! Parsing shared by the three macros: an error list, and the
//! `name = "..."`, `version = N`, `crate = path` arguments.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Path, Token};

use crate::symbol::{self, ARG_KEYS};

/// Every problem found in one input, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// An error spanning `tokens`.
    pub(crate) fn error(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// An error at `span`.
    pub(crate) fn error_at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn append(&mut self, other: Errors) {
        if let Some(error) = other.0 {
            self.push(error);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// `item` (what still compiles of the input: the input itself, or a
    /// stub) followed by a `compile_error!` per error, so that one mistake
    /// gives its own error and not one more at every use of the item.
    pub(crate) fn fallback(self, item: impl ToTokens) -> TokenStream {
        let mut tokens = item.into_token_stream();
        if let Some(errors) = self.0 {
            tokens.extend(errors.to_compile_error());
        }
        tokens
    }
}

impl Errors {
    /// An expression for a function-like macro: a block with every error,
    /// then `stub`, an expression that may name the generic fn
    /// `__serfn_stub`, which returns any type without diverging. Errors in
    /// expression position must be statements of a block: one after another
    /// they would parse as one path (`compile_error!{..}::core::...`) and
    /// rustc would report that syntax error before serfn's.
    pub(crate) fn fallback_expr(self, stub: TokenStream) -> TokenStream {
        let errors = self.0.map(|errors| errors.to_compile_error());
        quote::quote! {
            {
                #errors
                #[allow(dead_code)]
                fn __serfn_stub<T>() -> T {
                    ::core::unreachable!()
                }
                #stub
            }
        }
    }
}

/// `name = "..."`, `version = N`, `crate = path`, each optional; only
/// valid values are kept.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<(u32, Span)>,
    pub(crate) krate: Option<Path>,
}

impl Args {
    /// Parses an attribute's arguments, recording every problem in `errors`.
    pub(crate) fn parse_attribute(args: TokenStream, errors: &mut Errors) -> Self {
        syn::parse::Parser::parse2(|input: ParseStream| Args::parse(input, errors), args)
            .unwrap_or_else(|error| {
                errors.push(error);
                Args::default()
            })
    }

    /// Parses the arguments up to the end of `input`. Syntax errors stop the
    /// parse; unknown, duplicate and invalid values are pushed to `errors`
    /// and the parse goes on.
    pub(crate) fn parse(input: ParseStream, errors: &mut Errors) -> syn::Result<Self> {
        let mut args = Args::default();
        let mut seen = Vec::new();
        let mut first = |key: &'static str, span: Span, errors: &mut Errors| {
            let first = !seen.contains(&key);
            if !first {
                errors.error_at(span, format_args!("duplicate `{key}` argument"));
            }
            seen.push(key);
            first
        };
        while !input.is_empty() {
            if input.peek(Token![crate]) {
                let key: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                let path = parse_crate_path(input)?;
                if first("crate", key.span, errors) {
                    args.krate = Some(path);
                }
            } else if input.peek(symbol::name) {
                let key: symbol::name = input.parse()?;
                input.parse::<Token![=]>()?;
                let name =
                    parse_value::<LitStr>(input, "a string literal: `name = \"my_crate::scale\"`")?;
                if first("name", key.span, errors) {
                    if name.value().is_empty() {
                        errors.error(&name, "the name must not be empty");
                    } else {
                        args.name = Some(name);
                    }
                }
            } else if input.peek(symbol::version) {
                let key: symbol::version = input.parse()?;
                input.parse::<Token![=]>()?;
                let version = parse_value::<LitInt>(input, "an integer: `version = 2`")?;
                if first("version", key.span, errors) {
                    match version.base10_parse::<u32>() {
                        Ok(0) => errors.error(
                            &version,
                            "versions start at 1: raise the version when the layout of the capture changes",
                        ),
                        Ok(value) => args.version = Some((value, version.span())),
                        Err(error) => errors.error(&version, format_args!("the version must be a `u32`: {error}")),
                    }
                }
            } else if input.peek(Ident) {
                let key: Ident = input.parse()?;
                errors.error(
                    &key,
                    format_args!("unknown argument `{key}`; expected {ARG_KEYS}"),
                );
                skip_value(input);
            } else {
                return Err(input.error(format_args!("expected {ARG_KEYS}")));
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

fn parse_value<T: Parse>(input: ParseStream, expected: &str) -> syn::Result<T> {
    let fork = input.fork();
    fork.parse::<T>()
        .and_then(|_| input.parse())
        .map_err(|_| input.error(format_args!("expected {expected}")))
}

/// A path, bare (`crate = my::serfn`) or quoted (`crate = "my::serfn"`) as
/// serde writes it.
fn parse_crate_path(input: ParseStream) -> syn::Result<Path> {
    if input.peek(LitStr) {
        let path: LitStr = input.parse()?;
        return path.parse_with(Path::parse_mod_style);
    }
    Path::parse_mod_style(input).map_err(|error| {
        syn::Error::new(error.span(), "expected a path: `crate = my_crate::serfn`")
    })
}

/// Skips what follows an unknown key, up to the next top-level comma.
fn skip_value(input: ParseStream) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            if matches!(&tree, proc_macro2::TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    });
}
