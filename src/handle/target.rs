//! What a handle holds: the type-erased function, and for a [`SerFn`]
//! whose function is a registered `Fn` of exactly its types, the same
//! allocation as a typed call target, resolved once when the handle is
//! built or decoded.
//!
//! [`SerFn`]: crate::SerFn

use std::ops::Deref;
use std::sync::Arc;

use crate::registry::{SerializableFn, TypedFn};

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
    /// A `then` pipeline built in this process: the erased pipeline for
    /// encoding, and its stages composed with their types for calls.
    Composed(Arc<Composed<A, R>>),
}

/// A pipeline whose calls go from typed stage to typed stage: no slots, no
/// boxed intermediate values.
pub(super) struct Composed<A, R> {
    erased: Arc<dyn SerializableFn>,
    call: Box<dyn Fn(A) -> R + Send + Sync>,
    /// How deeply `call` nests: each `then` adds a frame to a call.
    depth: usize,
}

impl<A, R> Composed<A, R> {
    #[inline]
    pub(super) fn call(&self, args: A) -> R {
        (self.call)(args)
    }
}

/// The deepest typed composition: past it, `then` builds the erased
/// pipeline only, whose calls loop instead of nesting, so that a chain of
/// any length runs in constant stack.
const MAX_COMPOSED_DEPTH: usize = 64;

impl<A, R> Target<A, R> {
    /// How many frames a typed call nests; `None` for an erased function,
    /// which a typed pipeline does not hold (an erased pipeline grows in
    /// place instead, and a decoded one calls through slots anyway).
    pub(super) fn typed_depth(&self) -> Option<usize> {
        match self {
            Target::Typed(_) => Some(1),
            Target::Composed(composed) => Some(composed.depth),
            Target::Erased(_) => None,
        }
    }

    /// `first` then `second`, typed, with `erased` to encode it; `None`
    /// when either is erased or the result would nest too deeply.
    pub(super) fn compose<B>(
        first: &Target<A, B>,
        second: &Target<B, R>,
        erased: impl FnOnce() -> Arc<dyn SerializableFn>,
    ) -> Option<Self>
    where
        A: 'static,
        B: 'static,
        R: 'static,
    {
        let depth = first.typed_depth()? + second.typed_depth()?;
        if depth > MAX_COMPOSED_DEPTH {
            return None;
        }
        // Each stage called directly on its own kind: no match per call.
        let call: Box<dyn Fn(A) -> R + Send + Sync> = match (first, second) {
            (Target::Typed(f), Target::Typed(g)) => {
                let (f, g) = (Arc::clone(f), Arc::clone(g));
                Box::new(move |args| g.__serfn_typed_call(f.__serfn_typed_call(args)))
            }
            (Target::Composed(f), Target::Typed(g)) => {
                let (f, g) = (Arc::clone(f), Arc::clone(g));
                Box::new(move |args| g.__serfn_typed_call(f.call(args)))
            }
            (Target::Typed(f), Target::Composed(g)) => {
                let (f, g) = (Arc::clone(f), Arc::clone(g));
                Box::new(move |args| g.call(f.__serfn_typed_call(args)))
            }
            (Target::Composed(f), Target::Composed(g)) => {
                let (f, g) = (Arc::clone(f), Arc::clone(g));
                Box::new(move |args| g.call(f.call(args)))
            }
            _ => return None,
        };
        Some(Target::Composed(Arc::new(Composed {
            erased: erased(),
            call,
            depth,
        })))
    }

    /// The erased function, shared.
    pub(super) fn erased(&self) -> Arc<dyn SerializableFn>
    where
        A: 'static,
        R: 'static,
    {
        match self {
            Target::Typed(f) => f.clone(),
            Target::Erased(f) => Arc::clone(f),
            Target::Composed(composed) => Arc::clone(&composed.erased),
        }
    }
}

impl<A: 'static, R: 'static> Inner for Target<A, R> {
    #[inline]
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
            // Dropping the typed stages first leaves a pipeline held once
            // unshared, so that the next `then` extends it in place.
            Target::Composed(composed) => match Arc::try_unwrap(composed) {
                Ok(Composed { erased, .. }) => erased,
                Err(shared) => Arc::clone(&shared.erased),
            },
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
            Target::Composed(composed) => &*composed.erased,
        }
    }
}

impl<A, R> Clone for Target<A, R> {
    fn clone(&self) -> Self {
        match self {
            Target::Typed(f) => Target::Typed(Arc::clone(f)),
            Target::Erased(f) => Target::Erased(Arc::clone(f)),
            Target::Composed(composed) => Target::Composed(Arc::clone(composed)),
        }
    }
}
