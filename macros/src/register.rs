//! `#[serfn::register]` on `impl Call<A> for Type` (or `CallMut`,
//! `CallOnce`): the impl unchanged, then its registration.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{GenericArgument, ItemImpl, PathArguments, Type};

use crate::ast::{self, Kind, Registration};
use crate::parse::{Args, Errors};

const USAGE: &str = "`#[serfn::register]` goes on `impl serfn::Call<Args> for Type`, `impl serfn::CallMut<Args> for Type` or `impl serfn::CallOnce<Args> for Type`";

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = Args::parse_attribute(args, &mut errors);
    let item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(error) => {
            errors.push(syn::Error::new(error.span(), USAGE));
            return errors.fallback(input);
        }
    };
    // Errors in the arguments alone still leave a registered impl: one
    // mistake, one error.
    let Some((kind, args_ty)) = check(&item, &mut errors) else {
        return errors.fallback(item);
    };
    let krate = ast::krate(&args);
    let registration = Registration {
        krate: &krate,
        args: &args,
        default_suffix: ast::compact(&item.self_ty),
        cfgs: ast::cfgs(&item.attrs),
    };
    let register = registration.register(kind, &item.self_ty, args_ty);
    let guard = registration.name_guard();
    errors.fallback(quote! {
        #item
        #register
        #guard
    })
}

/// The kind and the argument type of a concrete impl of one of the traits;
/// `None` after an error.
fn check<'a>(item: &'a ItemImpl, errors: &mut Errors) -> Option<(Kind, &'a Type)> {
    let concrete = item.generics.params.is_empty();
    if !concrete {
        errors.error(
            &item.generics,
            "`#[serfn::register]` needs a concrete impl: a name is registered for one concrete type. \
             Write `impl Call<A> for Type<Concrete>`, or keep the generic impl without this attribute \
             and register each concrete type with `serfn::register_instance!(Type<Concrete> as Call<A>)`",
        );
    }
    let Some((path, _)) = &item.trait_ else {
        errors.error(
            &item.self_ty,
            format_args!("{USAGE}, not on an inherent impl"),
        );
        return None;
    };
    if let Some(bang) = &item.modifiers.polarity {
        errors.error(bang, format_args!("{USAGE}, not on a negative impl"));
        return None;
    }
    let last = path.segments.last()?;
    let Some(kind) = Kind::from_trait_name(&last.ident) else {
        errors.error(
            path,
            format_args!("`{}` is not a serfn trait: {USAGE}", ast::compact(path)),
        );
        return None;
    };
    // rustc already refuses a wrong number of generic arguments on the impl
    // left in place: an error of ours would only repeat it.
    let args_ty = match &last.arguments {
        PathArguments::AngleBracketed(generic) if generic.args.len() == 1 => match &generic.args[0]
        {
            GenericArgument::Type(args_ty) => args_ty,
            _ => return None,
        },
        _ => return None,
    };
    concrete.then_some((kind, args_ty))
}
