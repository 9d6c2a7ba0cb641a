//! `serfn::closure!`: a `move` closure with a typed capture list and a
//! stable label, as a block that defines, registers and builds its capture
//! struct.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{
    bracketed, Block, Expr, ExprBlock, ExprClosure, Ident, LitStr, Pat, ReturnType, Stmt, Token,
    Type,
};

use crate::ast::{self, Arg, By, CallImpl, Capture, Kind, Registration};
use crate::parse::{Args, Errors};
use crate::{hygiene, symbol, valid};

const USAGE: &str =
    "serfn::closure!(\"label\", [capture: Type, ...], move |arg: Type, ...| -> Output { ... })";

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let parsed = Parser::parse2(
        |input: ParseStream| Closure::parse(input, &mut errors),
        input,
    );
    match parsed {
        Ok(closure) if errors.is_empty() => closure.expand(),
        Ok(closure) => errors.fallback_expr(closure.stub()),
        Err(error) => {
            errors.push(error);
            errors.fallback_expr(quote!(__serfn_stub()))
        }
    }
}

/// One entry of the capture list: `name: Type` or `name: Type = init`.
struct CaptureSpec {
    capture: Capture,
    init: Option<Expr>,
}

struct Closure {
    kind: Kind,
    label: LitStr,
    captures: Vec<Capture>,
    /// The span of the capture list, brackets included.
    capture_list: Span,
    /// The initializers of the captures: `None` moves the variable of the
    /// same name.
    inits: Vec<Option<Expr>>,
    /// `None` where the closure left out a type, already reported.
    args: Option<Vec<Arg>>,
    output: Option<Type>,
    body: Block,
    options: Args,
}

impl Closure {
    fn parse(input: ParseStream, errors: &mut Errors) -> syn::Result<Self> {
        let kind = if input.parse::<Option<Token![mut]>>()?.is_some() {
            Kind::CallMut
        } else if input.parse::<Option<symbol::once>>()?.is_some() {
            Kind::CallOnce
        } else {
            Kind::Call
        };
        let label: LitStr = input
            .parse()
            .map_err(|_| input.error(format_args!("expected a string literal label: `{USAGE}`")))?;
        if label.value().is_empty() {
            errors.error(
                &label,
                "the label must not be empty: it names the function, together with the module path",
            );
        }
        input.parse::<Token![,]>()?;

        if !input.peek(syn::token::Bracket) {
            return Err(input.error(format_args!(
                "expected the capture list in brackets, `[]` if there is none: `{USAGE}`"
            )));
        }
        let content;
        let brackets = bracketed!(content in input);
        let mut captures = Vec::new();
        while !content.is_empty() {
            let spec = CaptureSpec::parse(&content, By::of(kind))?;
            valid::check_capture_type(&spec.capture, errors);
            captures.push(spec);
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        input.parse::<Token![,]>()?;

        let closure: ExprClosure = input.parse().map_err(|error| {
            syn::Error::new(error.span(), format_args!("expected a closure: `{USAGE}`"))
        })?;
        let (args, all_typed, output) = check_closure(&closure, errors);
        let kind = async_kind(kind, &closure, errors);
        let options = if input.parse::<Option<Token![,]>>()?.is_some() {
            Args::parse(input, errors)?
        } else if input.is_empty() {
            Args::default()
        } else {
            return Err(input
                .error("expected `,` and then `name = \"...\"`, `version = N` or `crate = path`"));
        };

        let (captures, inits): (Vec<Capture>, Vec<Option<Expr>>) = captures
            .into_iter()
            .map(|spec| (spec.capture, spec.init))
            .unzip();
        ast::check_shadowing(&captures, &args, errors);
        let args = all_typed.then_some(args);
        Ok(Closure {
            kind,
            label,
            captures,
            capture_list: brackets.span.join(),
            inits,
            args,
            output,
            body: into_block(*closure.body),
            options,
        })
    }

    /// What the fallback returns after an error: a value of the handle's
    /// type, so that the caller's code type-checks without errors of its own.
    fn stub(&self) -> TokenStream {
        let krate = ast::krate(&self.options);
        let handle = self.kind.handle();
        let args_ty = match &self.args {
            Some(args) => ast::args_type(args),
            None => quote!(_),
        };
        let output = match &self.output {
            Some(output) => quote!(#output),
            None => quote!(_),
        };
        quote!(__serfn_stub::<#krate::#handle<#args_ty, #output>>())
    }

    fn expand(self) -> TokenStream {
        let (Some(args), Some(output)) = (self.args, self.output) else {
            unreachable!("a closure without its types is reported, not expanded")
        };
        let krate = ast::krate(&self.options);
        let label = self.label.value();
        let ident = ast::generated_ident("closure", &label);
        // Not the shorthand `{ ys }`: for a variable moved into two closures
        // rustc would suggest `ys: ys.clone(): Vec<f64>`. With `ys: ys` it
        // suggests `ys.clone(): Vec<f64>`, which the capture list answers
        // with the right form (`CaptureSpec::parse`).
        let fields = self
            .captures
            .iter()
            .zip(&self.inits)
            .map(|(capture, init)| {
                let ident = &capture.ident;
                match init {
                    Some(init) => quote!(#ident: #init),
                    None => quote!(#ident: #ident),
                }
            });
        let fields: Vec<TokenStream> = fields.collect();
        // The body and the bindings it sees, at the mixed site: see
        // `hygiene`.
        let captures: Vec<Capture> = self
            .captures
            .into_iter()
            .map(|capture| Capture {
                ident: hygiene::ident_at_mixed_site(&capture.ident),
                ..capture
            })
            .collect();
        let captures = &captures[..];
        let args: Vec<Arg> = args
            .into_iter()
            .map(|Arg { pat, ty }| Arg {
                pat: respan_pat(&pat),
                ty,
            })
            .collect();
        let body = respan_block(&self.body);

        let checks = ast::capture_checks(&krate, &[], captures);
        let vis = syn::Visibility::Inherited;
        let capture_struct = ast::capture_struct(
            &krate,
            self.capture_list,
            TokenStream::new(),
            &vis,
            &ident,
            captures,
        );
        let call_impl = CallImpl {
            krate: &krate,
            kind: self.kind,
            self_ty: &ident,
            captures,
            args: &args,
            output: &output,
            method_attrs: &[],
            body: &body,
        }
        .to_tokens();
        let registration = Registration {
            krate: &krate,
            args: &self.options,
            default_suffix: label,
            cfgs: Vec::new(),
        };
        let args_ty = ast::args_type(&args);
        let register = registration.register(self.kind, &ident, &args_ty);

        let handle = self.kind.handle();
        quote! {
            {
                #checks
                #capture_struct
                #call_impl
                #register
                #krate::#handle::<#args_ty, #output>::new(#ident { #(#fields),* })
            }
        }
    }
}

impl CaptureSpec {
    fn parse(input: ParseStream, by: By) -> syn::Result<Self> {
        let mutability: Option<Token![mut]> = input.parse()?;
        let ident: Ident = input.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected a capture: `name: Type` or `name: Type = value`",
            )
        })?;
        if input.peek(Token![.]) {
            return Err(expression_before_type(&ident, input));
        }
        if !input.peek(Token![:]) {
            return Err(syn::Error::new(
                ident.span(),
                format_args!("give the capture a type: `{ident}: Type`; it becomes a field of the capture struct"),
            ));
        }
        input.parse::<Token![:]>()?;
        let ty: Type = input.parse()?;
        let init = match input.parse::<Option<Token![=]>>()? {
            Some(_) => Some(input.parse()?),
            None => None,
        };
        Ok(CaptureSpec {
            capture: Capture {
                mutability,
                ident,
                ty,
                by,
            },
            init,
        })
    }
}

/// `ys.clone(): Vec<f64>`, which rustc suggests for a variable moved into
/// two closures: the error says `ys: Vec<f64> = ys.clone()`.
fn expression_before_type(ident: &Ident, input: ParseStream) -> syn::Error {
    let start = ident.span();
    let parsed = input.step(|cursor| {
        // The tokens up to a `:` that is not part of a `::`.
        let mut value = quote!(#ident);
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            if let proc_macro2::TokenTree::Punct(p) = &tree {
                if p.as_char() == ':' && p.spacing() == proc_macro2::Spacing::Alone {
                    let before_is_colon = value.clone().into_iter().last().is_some_and(
                        |t| matches!(&t, proc_macro2::TokenTree::Punct(q) if q.as_char() == ':'),
                    );
                    if !before_is_colon {
                        return Ok((value, rest));
                    }
                }
            }
            value.extend([tree]);
            rest = next;
        }
        Err(cursor.error("expected `:`"))
    });
    let Ok(value) = parsed else {
        return syn::Error::new(
            start,
            "expected a capture: `name: Type` or `name: Type = value`",
        );
    };
    let ty = input
        .parse::<Token![:]>()
        .and_then(|_| input.parse::<Type>())
        .map_or_else(|_| "Type".to_owned(), |ty| ast::compact(&ty));
    syn::Error::new_spanned(
        &value,
        format_args!(
            "a capture is `name: Type = value`: write `{ident}: {ty} = {}`",
            ast::compact(&value)
        ),
    )
}

/// The arguments of a `move` closure, whether each has a type, and its
/// return type.
fn check_closure(closure: &ExprClosure, errors: &mut Errors) -> (Vec<Arg>, bool, Option<Type>) {
    let unsupported = [
        closure
            .attrs
            .first()
            .map(|attr| (attr.span(), "attributes")),
        closure
            .lifetimes
            .as_ref()
            .map(|l| (l.for_token.span, "`for<...>` lifetimes")),
        closure
            .constness
            .as_ref()
            .map(|t| (t.span, "`const` closures")),
    ];
    for (span, what) in unsupported.into_iter().flatten() {
        errors.error_at(
            span,
            format_args!("`serfn::closure!` does not support {what}"),
        );
    }
    let (or1, inputs, or2) = (&closure.inputs_begin, &closure.inputs, &closure.inputs_end);
    let params = quote!(#or1 #inputs #or2);

    // What the closure should read, for the messages: the user's own
    // arguments, with `Type` where a type is missing.
    let typed_params = closure
        .inputs
        .iter()
        .map(|input| match input {
            Pat::Type(typed) => {
                format!("{}: {}", ast::compact(&typed.pat), ast::compact(&typed.ty))
            }
            pat => format!("{}: Type", ast::compact(pat)),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let output_text = match &closure.output {
        ReturnType::Type(_, ty) => ast::compact(ty),
        ReturnType::Default => "Output".to_owned(),
    };
    if closure.capture.is_none() {
        errors.error(
            &params,
            format_args!(
                "`serfn::closure!` needs a `move` closure, since its captures move into a serializable struct: \
                 write `move |{typed_params}| -> {output_text} {{ ... }}`"
            ),
        );
    }

    let mut args = Vec::new();
    let mut all_typed = true;
    for input in &closure.inputs {
        match input {
            Pat::Type(typed) => {
                if let Some(attr) = typed.attrs.first() {
                    errors.error(
                        attr,
                        "`serfn::closure!` does not support attributes on arguments",
                    );
                }
                ast::check_concrete(&typed.ty, "the arguments of `serfn::closure!`", errors);
                args.push(Arg {
                    pat: (*typed.pat).clone(),
                    ty: (*typed.ty).clone(),
                });
            }
            pat => {
                all_typed = false;
                errors.error(
                    pat,
                    format_args!(
                        "give the argument a type, `{}: Type`: the argument types are part of the registered signature",
                        ast::compact(pat)
                    ),
                );
            }
        }
    }

    let output = match &closure.output {
        ReturnType::Type(_, ty) => {
            ast::check_concrete(ty, "the return type of `serfn::closure!`", errors);
            Some((**ty).clone())
        }
        ReturnType::Default => {
            errors.error(
                &params,
                format_args!(
                    "give the closure a return type, `|{typed_params}| -> Output {{ ... }}` (`-> ()` for none): \
                     it is part of the registered signature"
                ),
            );
            None
        }
    };
    (args, all_typed, output)
}

/// `async move |x: A| -> R { ... }` is an `AsyncCall`; `mut` and `once`
/// have no async form.
fn async_kind(kind: Kind, closure: &ExprClosure, errors: &mut Errors) -> Kind {
    let Some(asyncness) = &closure.asyncness else {
        return kind;
    };
    if kind != Kind::Call {
        errors.error_at(
            asyncness.span,
            "an async `serfn::closure!` is called through `&self`: leave out `mut` and `once`",
        );
        return kind;
    }
    Kind::AsyncCall
}

fn respan_pat(pat: &Pat) -> Pat {
    let tokens = hygiene::mixed_site(pat.to_token_stream());
    Parser::parse2(Pat::parse_single, tokens).expect("a respanned pattern parses as before")
}

fn respan_block(block: &Block) -> Block {
    syn::parse2(hygiene::mixed_site(block.to_token_stream()))
        .expect("a respanned block parses as before")
}

/// The closure's body as a block: with a return type, it is one already.
fn into_block(body: Expr) -> Block {
    match body {
        Expr::Block(ExprBlock {
            attrs,
            label: None,
            block,
        }) if attrs.is_empty() => block,
        body => Block {
            brace_token: Default::default(),
            stmts: vec![Stmt::Expr(body, None)],
        },
    }
}
