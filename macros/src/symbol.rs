//! The keywords of the macros' inputs.

syn::custom_keyword!(name);
syn::custom_keyword!(version);
syn::custom_keyword!(once);

/// The parameter attribute of `#[serfn::function]`.
pub(crate) const CAPTURE: &str = "capture";

/// The argument keys, as listed in error messages.
pub(crate) const ARG_KEYS: &str = "`name = \"...\"`, `version = N` or `crate = path`";
