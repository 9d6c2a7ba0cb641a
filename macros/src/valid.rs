//! The checks of `serfn::closure!` on its types: what cannot be a field of
//! a capture struct, or part of the signature of an item of its own.

use syn::visit::Visit;
use syn::{Ident, Type};

use crate::ast::{self, Capture};
use crate::parse::Errors;

/// Refuses capture types that cannot be a field of the capture struct,
/// which is an item of its own, owned and sent to other processes.
///
/// A reference or a lifetime borrows; a generic parameter of the enclosing
/// fn is out of an item's reach. The macro sees only the tokens, so a
/// generic parameter is recognized by its conventional name: one capital
/// letter, optionally followed by digits (`T`, `U`, `T2`). A type with such
/// a name is very rare; otherwise rustc reports E0401.
pub(crate) fn check_capture_type(capture: &Capture, errors: &mut Errors) {
    struct Finder<'a> {
        capture: &'a Capture,
        errors: &'a mut Errors,
    }

    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_reference(&mut self, ty: &'ast syn::TypeReference) {
            let ident = &self.capture.ident;
            let owned = owned_form(ident, &self.capture.ty, ty);
            self.errors.error(
                ty,
                format_args!(
                    "a capture cannot borrow: it moves into the capture struct, which is serialized and rebuilt in other processes. \
                     Capture an owned value: {owned}"
                ),
            );
        }

        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            self.errors.error(
                lifetime,
                format_args!(
                    "a capture cannot borrow, so its type has no lifetime `{lifetime}`: \
                     it moves into the capture struct, which is serialized and rebuilt in other processes. \
                     Name an owned type (`String`, `Vec<T>`, `Cow<'static, str>` ...)"
                ),
            );
        }

        fn visit_type_path(&mut self, ty: &'ast syn::TypePath) {
            check_generic(ty, "a capture", self.errors);
            syn::visit::visit_type_path(self, ty);
        }
    }

    Finder { capture, errors }.visit_type(&capture.ty);
}

/// Reports the generic-looking names in an argument or return type.
pub(crate) fn check_generic_in(ty: &Type, what: &str, errors: &mut Errors) {
    struct Finder<'a> {
        what: &'a str,
        errors: &'a mut Errors,
    }

    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_path(&mut self, ty: &'ast syn::TypePath) {
            check_generic(ty, self.what, self.errors);
            syn::visit::visit_type_path(self, ty);
        }
    }

    Finder { what, errors }.visit_type(ty);
}

/// Reports `ty` if it looks like a generic parameter: the capture struct and
/// its impl are items of their own, out of reach of the enclosing fn's.
fn check_generic(ty: &syn::TypePath, what: &str, errors: &mut Errors) {
    if let Some(param) = ty.path.get_ident().filter(|ident| looks_generic(ident)) {
        errors.error(
            ty,
            format_args!(
                "`{param}` looks like a generic parameter of the enclosing fn, which {what} of `serfn::closure!` cannot use: \
                 the closure becomes an item of its own, with one concrete signature. Name a concrete type, \
                 or write a generic capture struct and register each instance with \
                 `serfn::register_instance!` (see the docs of `#[serfn::register]`)"
            ),
        );
    }
}

/// `T`, `U`, `T2`: the names generic parameters conventionally have.
fn looks_generic(ident: &Ident) -> bool {
    let name = ident.to_string();
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_digit())
}

/// What to write instead of the reference `reference` in the capture
/// `ident: ty`: the whole capture when `reference` is the whole type.
fn owned_form(ident: &Ident, ty: &Type, reference: &syn::TypeReference) -> String {
    let whole = matches!(ty, Type::Reference(r) if std::ptr::eq(r, reference));
    if !whole {
        return "name an owned type (`String`, `Vec<T>`, ...)".to_owned();
    }
    let (owned, convert) = match &*reference.elem {
        Type::Slice(slice) => (format!("Vec<{}>", ast::compact(&slice.elem)), "to_vec()"),
        Type::Path(path) if path.path.is_ident("str") => ("String".to_owned(), "to_string()"),
        Type::Path(path) if path.path.is_ident("Path") => ("PathBuf".to_owned(), "to_path_buf()"),
        elem => (ast::compact(elem), "clone()"),
    };
    format!("`{ident}: {owned} = {ident}.{convert}`")
}
