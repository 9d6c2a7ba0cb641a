//! The hygiene of a `serfn::closure!` body.
//!
//! The body becomes a method of the capture struct, an item nested in the
//! caller's fn: a local variable missing from the capture list would get
//! rustc's E0434 "can't capture dynamic environment in a fn item ... use the
//! `|| { ... }` closure form instead", which misleads inside what is already
//! a closure. Resolved at the macro's mixed site, the body's local names see
//! only what the expansion binds (the captures, the arguments, the body's
//! own `let`s), so a missing capture is E0425 "cannot find value `offset` in
//! this scope", at the user's token. Items (fns, consts, types) still
//! resolve at the call site; only the resolution changes, never the location
//! of a token, so every error still points at the user's code.

use proc_macro2::{Group, Ident, Spacing, Span, TokenStream, TokenTree};

/// `tokens`, their local names resolved at the macro's mixed site.
///
/// Keywords keep their span, so that the body keeps the caller's edition,
/// and `self` keeps meaning the caller's `self` (refused there, rather than
/// silently naming the capture struct). Macro names (`name!`) keep theirs.
/// Literals move too: `format!("{offset}")` captures `offset` with the
/// literal's hygiene.
pub(crate) fn mixed_site(tokens: TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    for (i, tree) in trees.iter().enumerate() {
        let tree = match tree {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), mixed_site(group.stream()));
                respanned.set_span(group.span());
                TokenTree::Group(respanned)
            }
            TokenTree::Ident(ident) => {
                // `name!(..)`, not `n != 1`.
                let is_macro_name = matches!(
                    (trees.get(i + 1), trees.get(i + 2)),
                    (Some(TokenTree::Punct(p)), Some(TokenTree::Group(_)))
                        if p.as_char() == '!' && p.spacing() == Spacing::Alone
                );
                if is_macro_name || is_keyword(ident) {
                    tree.clone()
                } else {
                    TokenTree::Ident(ident_at_mixed_site(ident))
                }
            }
            TokenTree::Literal(literal) => {
                let mut literal = literal.clone();
                literal.set_span(resolved_at_mixed_site(literal.span()));
                TokenTree::Literal(literal)
            }
            TokenTree::Punct(_) => tree.clone(),
        };
        out.push(tree);
    }
    out.into_iter().collect()
}

/// `ident` at the same place, resolved at the macro's mixed site.
pub(crate) fn ident_at_mixed_site(ident: &Ident) -> Ident {
    let mut ident = ident.clone();
    ident.set_span(resolved_at_mixed_site(ident.span()));
    ident
}

fn resolved_at_mixed_site(span: Span) -> Span {
    span.resolved_at(Span::mixed_site())
}

/// Strict and reserved keywords of every edition, plus `union`, `macro_rules`
/// and `raw`, which are contextual.
fn is_keyword(ident: &Ident) -> bool {
    const KEYWORDS: &[&str] = &[
        "Self",
        "abstract",
        "as",
        "async",
        "await",
        "become",
        "box",
        "break",
        "const",
        "continue",
        "crate",
        "do",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "final",
        "fn",
        "for",
        "gen",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "macro",
        "macro_rules",
        "match",
        "mod",
        "move",
        "mut",
        "override",
        "priv",
        "pub",
        "raw",
        "ref",
        "return",
        "safe",
        "self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "try",
        "type",
        "typeof",
        "union",
        "unsafe",
        "unsized",
        "use",
        "virtual",
        "where",
        "while",
        "yield",
    ];
    let name = ident.to_string();
    KEYWORDS.contains(&name.as_str())
}
