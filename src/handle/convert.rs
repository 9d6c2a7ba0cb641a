//! Conversions between the handles, and the deep `Clone` of the stateful ones.

use std::marker::PhantomData;

use super::target::Inner;
use super::{SerFn, SerFnMut, SerFnOnce};

/// Deep copies: the capture is state, so a clone must not share it.
macro_rules! clone_deep {
    ($handle:ident) => {
        impl<A, R> Clone for $handle<A, R> {
            /// Clones the capture, through its `Clone` impl when it has one,
            /// otherwise through its serde impls.
            ///
            /// # Panics
            /// Only if the capture has no `Clone` impl and its own encoding
            /// does not decode, which is a bug in its serde impls.
            fn clone(&self) -> Self {
                let inner = self.inner.__serfn_clone().unwrap_or_else(|error| {
                    panic!(
                        "cannot clone serfn function `{}`: {error}",
                        self.inner.name()
                    )
                });
                $handle {
                    inner,
                    types: PhantomData,
                }
            }
        }
    };
}

clone_deep!(SerFnMut);
clone_deep!(SerFnOnce);

impl<A: 'static, R: 'static> From<SerFn<A, R>> for SerFnMut<A, R> {
    fn from(f: SerFn<A, R>) -> Self {
        SerFnMut {
            inner: f.inner.into_arc(),
            types: PhantomData,
        }
    }
}

impl<A: 'static, R: 'static> From<SerFn<A, R>> for SerFnOnce<A, R> {
    fn from(f: SerFn<A, R>) -> Self {
        SerFnOnce {
            inner: f.inner.into_arc(),
            types: PhantomData,
        }
    }
}

impl<A, R> From<SerFnMut<A, R>> for SerFnOnce<A, R> {
    fn from(f: SerFnMut<A, R>) -> Self {
        SerFnOnce {
            inner: f.inner,
            types: PhantomData,
        }
    }
}
