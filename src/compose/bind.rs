//! `f.bind(x)`: partial application of the first tuple element.
//!
//! The bound value is kept encoded. A call encodes the remaining arguments
//! after it and decodes the whole tuple: a tuple's encoding is its
//! elements' encodings in a row, so this needs no knowledge of the types,
//! and binding a bound function again just lengthens the prefix.
//!
//! A pair bound once leaves its second element bare (`B`, not `(B,)`): the
//! same bytes. On the wire, such a `bind` keeps the signature fingerprint of
//! `(B,)` it had when it left a 1-tuple, so its encoding did not change
//! (`SerializableFn::__serfn_wire_tupled`).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::Stage;
use crate::codec::{self, stash};
use crate::erased::{ArgSlot, Input, Output};
use crate::error::{Error, Result};
use crate::registry::{Registered, Registration, SerializableFn};
use crate::signature::{Signature, TypeInfo};

static REGISTRATION: Registration = Registration::new(
    "serfn::bind",
    1,
    None,
    None,
    crate::__private::decode_as::<Bind>,
    file!(),
    line!(),
);

inventory::submit! { Registered(&REGISTRATION) }

/// An argument tuple (`()` to 8 elements), whose leading elements can be bound.
///
/// # Example
/// ```
/// use serfn::plumbing::ArgTuple;
///
/// fn takes_tuples<A: ArgTuple>() {}
/// takes_tuples::<()>();
/// takes_tuples::<(u8, String, Vec<f64>)>();
/// ```
pub trait ArgTuple: 'static {
    /// The type left after binding the first `bound` elements.
    #[doc(hidden)]
    fn after(bound: usize) -> Option<TypeInfo>;

    /// Checks that `prefix` encodes exactly the first `bound` elements, as
    /// their types.
    #[doc(hidden)]
    fn check_prefix(bound: usize, prefix: &[u8]) -> Result<()>;

    /// Whether the type left after binding `bound` elements is the last
    /// element of a pair, which the wire names as a 1-tuple (see
    /// `wire_fingerprint`).
    #[doc(hidden)]
    fn pair_last(bound: usize) -> bool {
        let _ = bound;
        false
    }
}

/// The prefix check of a function whose arguments are not a tuple, or of a
/// tuple with all its elements checked: nothing may be bound, nothing left.
pub(crate) fn check_nothing_bound(bound: usize, prefix: &[u8]) -> Result<()> {
    if bound > 0 {
        return Err(Error::decode(format!(
            "{bound} more bound arguments than the function takes"
        )));
    }
    if !prefix.is_empty() {
        return Err(Error::decode(format!(
            "{} bytes left over after the bound arguments",
            prefix.len()
        )));
    }
    Ok(())
}

/// A tuple with a first element to bind: `(A, B, C)` splits into `A` and
/// `(B, C)`, `(A, B)` into `A` and `B`, `(A,)` into `A` and `()`.
///
/// # Example
/// ```
/// use serfn::plumbing::SplitFirst;
///
/// fn split<A: SplitFirst>(first: A::First) -> A::First { first }
/// let first: u8 = split::<(u8, String)>(7);
/// assert_eq!(first, 7);
/// ```
pub trait SplitFirst: ArgTuple {
    /// The first element.
    type First;
    /// The other elements: a tuple, or the one element left of a pair.
    type Rest;
}

impl ArgTuple for () {
    fn after(bound: usize) -> Option<TypeInfo> {
        (bound == 0).then(TypeInfo::of::<()>)
    }

    fn check_prefix(bound: usize, prefix: &[u8]) -> Result<()> {
        check_nothing_bound(bound, prefix)
    }
}

/// `(A, B)` splits into `A` and `B`, not `(B,)`: bound once, a function of
/// two arguments takes one, as a closure of one argument does. So `B` is
/// not split further, even if it is a tuple itself.
impl<A: DeserializeOwned + 'static, B: DeserializeOwned + 'static> ArgTuple for (A, B) {
    fn after(bound: usize) -> Option<TypeInfo> {
        match bound {
            0 => Some(TypeInfo::of::<Self>()),
            1 => Some(TypeInfo::of::<B>()),
            _ => None,
        }
    }

    fn check_prefix(bound: usize, prefix: &[u8]) -> Result<()> {
        if bound == 0 {
            return check_nothing_bound(bound, prefix);
        }
        let used = codec::decode_prefix::<A>(prefix)?;
        check_nothing_bound(bound - 1, &prefix[used..])
    }

    fn pair_last(bound: usize) -> bool {
        bound == 1
    }
}

impl<A: DeserializeOwned + 'static, B: DeserializeOwned + 'static> SplitFirst for (A, B) {
    type First = A;
    type Rest = B;
}

/// `(A,)` and tuples of three elements or more: the rest stays a tuple.
macro_rules! split_first {
    ($first:ident $(, $rest:ident)*) => {
        impl<$first: DeserializeOwned + 'static $(, $rest: DeserializeOwned + 'static)*> ArgTuple for ($first, $($rest,)*) {
            fn after(bound: usize) -> Option<TypeInfo> {
                match bound {
                    0 => Some(TypeInfo::of::<Self>()),
                    _ => <($($rest,)*) as ArgTuple>::after(bound - 1),
                }
            }

            fn check_prefix(bound: usize, prefix: &[u8]) -> Result<()> {
                if bound == 0 {
                    return check_nothing_bound(bound, prefix);
                }
                let used = codec::decode_prefix::<$first>(prefix)?;
                <($($rest,)*) as ArgTuple>::check_prefix(bound - 1, &prefix[used..])
            }

            fn pair_last(bound: usize) -> bool {
                bound > 0 && <($($rest,)*) as ArgTuple>::pair_last(bound - 1)
            }
        }

        impl<$first: DeserializeOwned + 'static $(, $rest: DeserializeOwned + 'static)*> SplitFirst for ($first, $($rest,)*) {
            type First = $first;
            type Rest = ($($rest,)*);
        }
    };
}

split_first!(A);
split_first!(A, B, C);
split_first!(A, B, C, D);
split_first!(A, B, C, D, E);
split_first!(A, B, C, D, E, F);
split_first!(A, B, C, D, E, F, G);
split_first!(A, B, C, D, E, F, G, H);

/// `inner` with its first argument element fixed to `first`.
pub(crate) fn bind<T: Serialize + ?Sized>(
    inner: Arc<dyn SerializableFn>,
    first: &T,
) -> Result<Arc<dyn SerializableFn>> {
    let bind = Bind {
        inner: Stage(inner),
        prefix: codec::encode_value(first)?,
        bound: 1,
    };
    // The types allow one bind that the function cannot answer: into the
    // tuple that is the second of two arguments (`(A, (B, C))` bound
    // twice). The prefix is the caller's typed value: no need to decode it.
    if bind.args().is_none() {
        return Err(bind.too_many());
    }
    Ok(Arc::new(bind))
}

#[derive(Serialize, Debug)]
pub(crate) struct Bind {
    inner: Stage,
    prefix: Vec<u8>,
    bound: u32,
}

impl<'de> Deserialize<'de> for Bind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            inner: Stage,
            prefix: Vec<u8>,
            bound: u32,
        }
        let Raw {
            inner,
            prefix,
            bound,
        } = Raw::deserialize(deserializer)?;
        let bind = Bind {
            inner,
            prefix,
            bound,
        };
        bind.check().map_err(stash)?;
        Ok(bind)
    }
}

impl Bind {
    fn args(&self) -> Option<TypeInfo> {
        self.inner.0.__serfn_args_after(self.bound as usize)
    }

    fn too_many(&self) -> Error {
        let inner = &self.inner.0;
        Error::SignatureMismatch {
            name: inner.name().into(),
            expected: format!(
                "a function taking a tuple of at least {} elements \
                 (the second of two arguments is bound whole, never split)",
                self.bound
            ),
            found: inner.signature().to_string(),
        }
    }

    /// Refuses a decoded `bind` that binds more than its function takes or
    /// whose bound values are not its leading argument types, so that no
    /// call of what decoding accepted can fail on them.
    fn check(&self) -> Result<()> {
        let inner = &self.inner.0;
        if self.args().is_none() {
            return Err(self.too_many());
        }
        inner
            .__serfn_check_bound(self.bound as usize, &self.prefix)
            .map_err(|error| match error {
                Error::Decode { source } => Error::decode(format!(
                    "the {} bound argument(s) of `{}` do not decode as its argument types: {source}",
                    self.bound,
                    inner.name()
                )),
                other => other,
            })
    }
}

/// The input for the inner function: `prefix` in front of what was given.
fn prefixed<'a>(prefix: &'a [u8], input: Input<'a>, buf: &'a mut Vec<u8>) -> Input<'a> {
    match input {
        Input::Slot(rest) => Input::Prefixed(prefix, rest),
        Input::Bytes(rest, limits) => {
            buf.extend_from_slice(prefix);
            buf.extend_from_slice(rest);
            Input::Bytes(buf, limits)
        }
        Input::Prefixed(more, rest) => {
            buf.extend_from_slice(prefix);
            buf.extend_from_slice(more);
            Input::Prefixed(buf, rest)
        }
    }
}

#[typetag::serde(name = "serfn::bind")]
impl SerializableFn for Bind {
    fn signature(&self) -> Signature {
        let inner = self.inner.0.signature();
        let args = self.args().expect("checked when built or decoded");
        Signature::new(inner.kind(), args, inner.output())
    }

    fn __serfn_registration(&self) -> &'static Registration {
        &REGISTRATION
    }

    fn __serfn_call(&self, input: Input<'_>, output: Output<'_>) -> Result<()> {
        let mut buf = Vec::new();
        self.inner
            .0
            .__serfn_call(prefixed(&self.prefix, input, &mut buf), output)
    }

    fn __serfn_call_mut(&mut self, input: Input<'_>, output: Output<'_>) -> Result<()> {
        let mut buf = Vec::new();
        let input = prefixed(&self.prefix, input, &mut buf);
        match Arc::get_mut(&mut self.inner.0) {
            Some(f) => f.__serfn_call_mut(input, output),
            // Shared only when it came from a `SerFn`: `Fn`, nothing to change.
            None => self.inner.0.__serfn_call(input, output),
        }
    }

    fn __serfn_call_once(self: Arc<Self>, input: Input<'_>, output: Output<'_>) -> Result<()> {
        let (inner, prefix) = match Arc::try_unwrap(self) {
            Ok(bind) => (bind.inner.0, bind.prefix),
            Err(shared) => (Arc::clone(&shared.inner.0), shared.prefix.clone()),
        };
        let mut buf = Vec::new();
        inner.__serfn_call_once(prefixed(&prefix, input, &mut buf), output)
    }

    fn __serfn_clone(&self) -> Result<Arc<dyn SerializableFn>> {
        Ok(Arc::new(Bind {
            inner: Stage(self.inner.0.__serfn_clone()?),
            prefix: self.prefix.clone(),
            bound: self.bound,
        }))
    }

    fn __serfn_output_slot(&self) -> Box<dyn ArgSlot> {
        self.inner.0.__serfn_output_slot()
    }

    fn __serfn_encode_capture(&self, out: &mut Vec<u8>) -> Result<()> {
        codec::encode_value_into(self, out)
    }

    fn __serfn_write_capture(&self, out: &mut codec::CaptureWriter<'_>) -> Result<()> {
        codec::write_value(self, out)
    }

    fn __serfn_args_after(&self, bound: usize) -> Option<TypeInfo> {
        self.inner.0.__serfn_args_after(self.bound as usize + bound)
    }

    fn __serfn_pair_last_after(&self, bound: usize) -> bool {
        self.inner
            .0
            .__serfn_pair_last_after(self.bound as usize + bound)
    }

    fn __serfn_wire_tupled(&self) -> bool {
        self.inner.0.__serfn_pair_last_after(self.bound as usize)
    }

    fn __serfn_check_bound(&self, bound: usize, prefix: &[u8]) -> Result<()> {
        // Our own prefix comes first in the inner function's arguments.
        let mut joined = self.prefix.clone();
        joined.extend_from_slice(prefix);
        self.inner
            .0
            .__serfn_check_bound(self.bound as usize + bound, &joined)
    }

    fn __serfn_into_stages(self: Arc<Self>) -> Vec<Arc<dyn SerializableFn>> {
        vec![self]
    }

    fn __serfn_into_typed(
        self: Arc<Self>,
        _: &mut dyn std::any::Any,
    ) -> Option<Arc<dyn SerializableFn>> {
        // Its types depend on what it holds: called through slots.
        Some(self)
    }
}
