//! The calling convention of type-erased functions: where a call takes
//! its argument from and where it puts its result.
//!
//! typetag refuses generic traits, so
//! [`SerializableFn`](crate::SerializableFn) knows no types: the typed
//! handles ([`SerFn`](crate::SerFn) and its siblings) check the
//! [`Signature`](crate::Signature) once, when they are built or decoded,
//! and then pass arguments and results through these type-erased slots.
//! This module depends on no function type: the registry's trait uses it.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::codec::{self, Limits};
use crate::error::{Error, Result};

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
    /// A buffer that receives the encoding of the result alone: how a
    /// stage of an async pipeline hands its output to the next.
    Value(&'a mut Vec<u8>),
}

/// The future of an async call through the registry's trait: the encoding
/// of the result. It owns what it needs (`'static`), so that a runtime can
/// run it apart from the frame that started it.
#[doc(hidden)]
pub type AsyncOutput = Pin<Box<dyn Future<Output = Result<Vec<u8>>> + Send>>;

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
