//! The checks of `serfn::closure!` on its types: what cannot be a field of
//! a capture struct, or part of the signature of an item of its own.

use syn::visit::Visit;
use syn::{Ident, Type};

use crate::ast::{self, Capture};
use crate::parse::Errors;

/// Refuses capture types that cannot be a field of the capture struct,
/// which is an item of its own, owned and sent to other processes.
///
/// A reference or a lifetime borrows. A generic parameter of the enclosing
/// fn is out of an item's reach too, but the macro sees only tokens, and
/// `T` may as well be a type alias: rustc reports E0401 for a generic
/// parameter, at the capture's type (see the docs of `closure!`).
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
    }

    Finder { capture, errors }.visit_type(&capture.ty);
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
