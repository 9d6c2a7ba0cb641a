//! `#[serfn::main]` on a program's `fn main`: `serfn::worker::init()`
//! before the body.

use proc_macro2::{Delimiter, Group, TokenStream};
use quote::quote;
use syn::ItemFn;

use crate::ast;
use crate::parse::{Args, Errors};

const USAGE: &str = "`#[serfn::main]` goes on the program's `fn main`";

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = Args::parse_attribute(args, &mut errors);
    if let Some(name) = &args.name {
        errors.error(name, "`#[serfn::main]` takes only `crate = path`");
    }
    if let Some((_, span)) = args.version {
        errors.error_at(span, "`#[serfn::main]` takes only `crate = path`");
    }
    let item: ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(error) => {
            errors.error_at(
                error.span(),
                format_args!(
                    "{USAGE}, where it calls `serfn::worker::init()` before the body; it does not apply to other items"
                ),
            );
            return errors.fallback(input);
        }
    };
    if item.sig.ident != "main" {
        errors.error(
            &item.sig.ident,
            format_args!(
                "{USAGE}, not on `fn {}`: what runs before it runs again in every worker, so `init()` must come first in `main`",
                item.sig.ident
            ),
        );
    }
    if let Some(asyncness) = &item.sig.asyncness {
        errors.error(
            asyncness,
            "`#[serfn::main]` needs a plain `fn main`: an async runtime starts threads that every worker would start again. \
             Call `serfn::worker::init()` first in a plain `main`, then build the runtime",
        );
    }
    if !errors.is_empty() {
        return errors.fallback(item);
    }
    let krate = ast::krate(&args);
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
        ..
    } = item;
    // The user's braces keep their span, for errors such as a missing
    // tail expression.
    let stmts = &block.stmts;
    let mut body = Group::new(
        Delimiter::Brace,
        quote! {
            #krate::worker::init();
            #(#stmts)*
        },
    );
    body.set_span(block.brace_token.span.join());
    quote! {
        #(#attrs)*
        #vis #sig #body
    }
}
