//! `f.bind(x)`: partial application of the first tuple element.
//!
//! The bound value is kept encoded. A call encodes the remaining arguments
//! after it and decodes the whole tuple: a tuple's encoding is its
//! elements' encodings in a row, so this needs no knowledge of the types,
//! and binding a bound function again just lengthens the prefix.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

use super::Stage;
use crate::codec::{self, stash};
use crate::erased::{ArgSlot, Input, Output, SerializableFn};
use crate::error::{Error, Result};
use crate::registry::{Registered, Registration};
use crate::signature::{Signature, TypeInfo};

static REGISTRATION: Registration = Registration::new(
    "serfn::bind",
    1,
    None,
    crate::__private::decode_as::<Bind>,
    file!(),
    line!(),
);

inventory::submit! { Registered(&REGISTRATION) }

/// An argument tuple (`()` to 8 elements), whose leading elements can be bound.
pub trait ArgTuple: 'static {
    /// The type left after binding the first `bound` elements.
    #[doc(hidden)]
    fn after(bound: usize) -> Option<TypeInfo>;
}

/// A tuple with a first element to bind: `(A, B, C)` splits into `A` and `(B, C)`.
pub trait SplitFirst: ArgTuple {
    /// The first element.
    type First;
    /// The other elements, as a tuple.
    type Rest: ArgTuple;
}

impl ArgTuple for () {
    fn after(bound: usize) -> Option<TypeInfo> {
        (bound == 0).then(TypeInfo::of::<()>)
    }
}

macro_rules! split_first {
    ($first:ident $(, $rest:ident)*) => {
        impl<$first: 'static $(, $rest: 'static)*> ArgTuple for ($first, $($rest,)*) {
            fn after(bound: usize) -> Option<TypeInfo> {
                match bound {
                    0 => Some(TypeInfo::of::<Self>()),
                    _ => <($($rest,)*) as ArgTuple>::after(bound - 1),
                }
            }
        }

        impl<$first: 'static $(, $rest: 'static)*> SplitFirst for ($first, $($rest,)*) {
            type First = $first;
            type Rest = ($($rest,)*);
        }
    };
}

split_first!(A);
split_first!(A, B);
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
    Ok(Arc::new(Bind {
        inner: Stage(inner),
        prefix: codec::encode_value(first)?,
        bound: 1,
    }))
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
        if bind.args().is_none() {
            return Err(stash(Error::SignatureMismatch {
                name: bind.inner.0.name().into(),
                expected: format!("a function taking a tuple of at least {bound} elements"),
                found: bind.inner.0.signature().to_string(),
            }));
        }
        Ok(bind)
    }
}

impl Bind {
    fn args(&self) -> Option<TypeInfo> {
        self.inner.0.__serfn_args_after(self.bound as usize)
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

    fn __serfn_args_after(&self, bound: usize) -> Option<TypeInfo> {
        self.inner.0.__serfn_args_after(self.bound as usize + bound)
    }

    fn __serfn_into_stages(self: Arc<Self>) -> Vec<Arc<dyn SerializableFn>> {
        vec![self]
    }
}
