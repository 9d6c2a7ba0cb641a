//! The type-erased function trait that typetag registers.
//!
//! typetag refuses generic traits, so [`SerializableFn`] knows no types: the
//! typed handles ([`SerFn`](crate::SerFn) and its siblings) check the
//! [`Signature`] once, when they are built or decoded, and then pass
//! arguments and results through type-erased slots.

use std::any::Any;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, Limits};
use crate::error::{Error, Result};
use crate::function::Call;
use crate::registry::Registration;
use crate::signature::{Signature, TypeInfo};

/// A registered function with its captured state, type-erased.
///
/// Implemented by [`#[serfn::register]`](crate::register) and the other
/// macros, never by hand. `Box<dyn SerializableFn>` implements serde's
/// `Serialize` and `Deserialize` through typetag, tagged with the registered
/// name; the handles ([`SerFn`](crate::SerFn), [`DynFn`](crate::DynFn), ...)
/// add the version and signature checks and are what most code should use.
///
/// The `__serfn_` methods are the calling convention of the handles and may
/// change in any release.
#[typetag::serde]
pub trait SerializableFn: Send + Sync + 'static {
    /// The registered name.
    fn name(&self) -> &'static str {
        self.__serfn_registration().name()
    }

    /// The function's signature.
    fn signature(&self) -> Signature;

    #[doc(hidden)]
    fn __serfn_registration(&self) -> &'static Registration;

    /// Appends the encoding of the capture: what the registration's
    /// decoder reads back.
    #[doc(hidden)]
    fn __serfn_encode_capture(&self, out: &mut Vec<u8>) -> Result<()>;

    #[doc(hidden)]
    fn __serfn_call(&self, input: Input<'_>, output: Output<'_>) -> Result<()>;

    #[doc(hidden)]
    fn __serfn_call_mut(&mut self, input: Input<'_>, output: Output<'_>) -> Result<()>;

    #[doc(hidden)]
    fn __serfn_call_once(self: Arc<Self>, input: Input<'_>, output: Output<'_>) -> Result<()>;

    /// A deep copy: through the capture's `Clone` when it has one, otherwise
    /// through the codec.
    #[doc(hidden)]
    fn __serfn_clone(&self) -> Result<Arc<dyn SerializableFn>>;

    /// An empty slot for this function's output, for pipelines.
    #[doc(hidden)]
    fn __serfn_output_slot(&self) -> Box<dyn ArgSlot>;

    /// The argument type left after binding the first `bound` elements of
    /// the argument tuple, if the argument is a tuple that long.
    #[doc(hidden)]
    fn __serfn_args_after(&self, bound: usize) -> Option<TypeInfo>;

    /// Checks that `prefix` is the encoding of the first `bound` elements
    /// of the argument tuple, as their declared types, and nothing more:
    /// how a decoded `bind` is refused before it can be called.
    #[doc(hidden)]
    fn __serfn_check_bound(&self, bound: usize, prefix: &[u8]) -> Result<()>;

    /// Whether [`__serfn_call_batch`](Self::__serfn_call_batch) is implemented.
    #[doc(hidden)]
    fn __serfn_batches(&self) -> bool {
        false
    }

    /// Calls an `Fn` once per element of `args` (the encoding of a sequence
    /// of arguments) in one typed pass, appending the results and the panics
    /// (as `codec::decode_batch_results` reads them) to `out`: how a pool's
    /// worker runs a chunk.
    #[doc(hidden)]
    fn __serfn_call_batch(&self, args: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<()> {
        let _ = (args, limits, out);
        Err(Error::SignatureMismatch {
            name: self.name().into(),
            expected: "a function that runs batches".into(),
            found: self.signature().to_string(),
        })
    }

    /// The stages this function runs, in order: itself, unless it is a pipeline.
    #[doc(hidden)]
    fn __serfn_into_stages(self: Arc<Self>) -> Vec<Arc<dyn SerializableFn>>;

    /// Moves `self` into `target` if `target` is an
    /// `Option<Arc<dyn TypedFn<A, R>>>` of this function's own types, and
    /// returns `None`; otherwise returns `self`. How a handle resolves its
    /// typed call target once, when it is built or decoded.
    #[doc(hidden)]
    fn __serfn_into_typed(self: Arc<Self>, target: &mut dyn Any)
        -> Option<Arc<dyn SerializableFn>>;
}

/// A registered `Fn` function called with its own types: what a
/// [`SerFn`](crate::SerFn) calls, one virtual call and no slots.
#[doc(hidden)]
pub trait TypedFn<A, R>: SerializableFn {
    /// Calls the function.
    fn __serfn_typed_call(&self, args: A) -> R;
}

impl<T, A> TypedFn<A, T::Output> for T
where
    T: Call<A> + SerializableFn,
    A: Serialize + DeserializeOwned + 'static,
{
    #[inline]
    fn __serfn_typed_call(&self, args: A) -> T::Output {
        self.call(args)
    }
}

/// Where a call takes its argument from.
///
/// The `'static` object bounds keep `Input` covariant, so combinators can
/// hand a shorter-lived input to the functions they hold.
#[doc(hidden)]
pub enum Input<'a> {
    /// A typed value in a [`Slot`].
    Slot(&'a mut (dyn ArgSlot + 'static)),
    /// The argument's encoding.
    Bytes(&'a [u8], &'a Limits),
    /// Encoded leading tuple elements followed by the rest in a slot (bound functions).
    Prefixed(&'a [u8], &'a mut (dyn ArgSlot + 'static)),
}

/// Where a call puts its result.
#[doc(hidden)]
pub enum Output<'a> {
    /// An `Option<R>` to fill.
    Slot(&'a mut (dyn Any + 'static)),
    /// A buffer that receives the encoding of `Ok::<R, Panic>(result)`.
    Bytes(&'a mut Vec<u8>),
}

/// A typed value behind a trait object: an argument in flight, or a stage's output.
#[doc(hidden)]
pub trait ArgSlot {
    /// The `Option<T>` inside.
    fn as_any(&mut self) -> &mut dyn Any;
    /// Appends the encoding of the value, for bound functions.
    fn encode_into(&self, buf: &mut Vec<u8>) -> Result<()>;
}

/// The one [`ArgSlot`] implementation.
#[doc(hidden)]
pub struct Slot<T>(pub Option<T>);

impl<T: Serialize + 'static> ArgSlot for Slot<T> {
    fn as_any(&mut self) -> &mut dyn Any {
        &mut self.0
    }

    fn encode_into(&self, buf: &mut Vec<u8>) -> Result<()> {
        match &self.0 {
            Some(value) => codec::encode_value_into(value, buf),
            None => Err(Error::encode("argument slot is empty")),
        }
    }
}
