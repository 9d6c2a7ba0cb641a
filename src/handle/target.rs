//! What a handle holds: the type-erased function, and for a [`SerFn`]
//! whose function is a registered `Fn` of exactly its types, the same
//! allocation as a typed call target, resolved once when the handle is
//! built or decoded.
//!
//! [`SerFn`]: crate::SerFn

use std::ops::Deref;
use std::sync::Arc;

use crate::erased::{SerializableFn, TypedFn};

/// How the handles' shared code builds and unwraps what they hold.
pub(super) trait Inner: Deref<Target = dyn SerializableFn> + Sized {
    fn from_arc(f: Arc<dyn SerializableFn>) -> Self;
    fn into_arc(self) -> Arc<dyn SerializableFn>;
}

impl Inner for Arc<dyn SerializableFn> {
    fn from_arc(f: Arc<dyn SerializableFn>) -> Self {
        f
    }

    fn into_arc(self) -> Arc<dyn SerializableFn> {
        self
    }
}

/// A `SerFn`'s function: typed when it can be (a call is one virtual
/// call), erased otherwise (combinators, whose types depend on what they
/// hold, call through slots).
pub(super) enum Target<A, R> {
    Typed(Arc<dyn TypedFn<A, R>>),
    Erased(Arc<dyn SerializableFn>),
}

impl<A: 'static, R: 'static> Inner for Target<A, R> {
    fn from_arc(f: Arc<dyn SerializableFn>) -> Self {
        let mut typed: Option<Arc<dyn TypedFn<A, R>>> = None;
        match (f.__serfn_into_typed(&mut typed), typed) {
            (Some(f), _) => Target::Erased(f),
            (None, Some(typed)) => Target::Typed(typed),
            (None, None) => unreachable!("`__serfn_into_typed` kept the function"),
        }
    }

    fn into_arc(self) -> Arc<dyn SerializableFn> {
        match self {
            Target::Typed(f) => f,
            Target::Erased(f) => f,
        }
    }
}

impl<A, R> Deref for Target<A, R> {
    type Target = dyn SerializableFn;

    #[inline]
    fn deref(&self) -> &(dyn SerializableFn + 'static) {
        match self {
            Target::Typed(f) => &**f,
            Target::Erased(f) => &**f,
        }
    }
}

impl<A, R> Clone for Target<A, R> {
    fn clone(&self) -> Self {
        match self {
            Target::Typed(f) => Target::Typed(Arc::clone(f)),
            Target::Erased(f) => Target::Erased(Arc::clone(f)),
        }
    }
}
