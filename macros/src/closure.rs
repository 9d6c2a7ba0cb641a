//! `serfn::closure!`: a `move` closure with a typed capture list and a
//! stable label, as a block that defines, registers and builds its capture
//! struct.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{
    bracketed, Block, Expr, ExprBlock, ExprClosure, Ident, LitStr, Pat, ReturnType, Stmt, Token,
    Type,
};

use crate::ast::{self, Arg, By, CallImpl, Capture, Kind, Registration};
use crate::parse::{Args, Errors};
use crate::symbol;

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
        Ok(_) => errors.fallback(TokenStream::new()),
        Err(error) => {
            errors.push(error);
            errors.fallback(TokenStream::new())
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
    args: Vec<Arg>,
    output: Type,
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
            captures.push(CaptureSpec::parse(&content, By::of(kind))?);
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        input.parse::<Token![,]>()?;

        let closure: ExprClosure = input.parse().map_err(|error| {
            syn::Error::new(error.span(), format_args!("expected a closure: `{USAGE}`"))
        })?;
        let (args, output) = check_closure(&closure, errors);
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

    fn expand(self) -> TokenStream {
        let krate = ast::krate(&self.options);
        let label = self.label.value();
        let ident = ast::generated_ident("closure", &label);
        let captures = &self.captures;
        let fields = captures.iter().zip(&self.inits).map(|(capture, init)| {
            let ident = &capture.ident;
            match init {
                Some(init) => quote!(#ident: #init),
                None => quote!(#ident),
            }
        });

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
            args: &self.args,
            output: &self.output,
            method_attrs: &[],
            body: &self.body,
        }
        .to_tokens();
        let registration = Registration {
            krate: &krate,
            args: &self.options,
            default_suffix: label,
            cfgs: Vec::new(),
        };
        let args_ty = ast::args_type(&self.args);
        let register = registration.register(self.kind, &ident, &args_ty);

        let handle = self.kind.handle();
        let output = &self.output;
        quote! {
            {
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

/// The arguments and the output type of a `move` closure with typed
/// arguments and a return type.
fn check_closure(closure: &ExprClosure, errors: &mut Errors) -> (Vec<Arg>, Type) {
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
        closure
            .asyncness
            .as_ref()
            .map(|t| (t.span, "`async` closures")),
    ];
    for (span, what) in unsupported.into_iter().flatten() {
        errors.error_at(
            span,
            format_args!("`serfn::closure!` does not support {what}"),
        );
    }
    let (or1, inputs, or2) = (&closure.inputs_begin, &closure.inputs, &closure.inputs_end);
    let params = quote!(#or1 #inputs #or2);
    if closure.capture.is_none() {
        errors.error(
            &params,
            "`serfn::closure!` needs a `move` closure: the captures are moved into a serializable struct. \
             Write `move |arg: Type| -> Output { ... }`",
        );
    }

    let mut args = Vec::new();
    for input in &closure.inputs {
        match input {
            Pat::Type(typed) => {
                if let Some(attr) = typed.attrs.first() {
                    errors.error(attr, "`serfn::closure!` does not support attributes on arguments");
                }
                ast::check_concrete(&typed.ty, "the arguments of `serfn::closure!`", errors);
                args.push(Arg {
                    pat: (*typed.pat).clone(),
                    ty: (*typed.ty).clone(),
                });
            }
            pat => errors.error(
                pat,
                format_args!(
                    "give the argument a type: `{}: Type`; the argument types are part of the registered signature",
                    ast::compact(pat)
                ),
            ),
        }
    }

    let output = match &closure.output {
        ReturnType::Type(_, ty) => {
            ast::check_concrete(ty, "the return type of `serfn::closure!`", errors);
            (**ty).clone()
        }
        ReturnType::Default => {
            errors.error(
                &params,
                "give the closure a return type, `|...| -> Output { ... }` (`-> ()` for none): \
                 it is part of the registered signature",
            );
            syn::parse_quote!(())
        }
    };
    (args, output)
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
