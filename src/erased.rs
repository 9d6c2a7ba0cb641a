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

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, Limits};
use crate::error::{Error, Panic, Result};

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

/// A pipeline's chunk on its way through the stages, typed between them:
/// each `Fn` stage takes the values the one before left (the first decodes
/// them), calls once per value and leaves its results (the last encodes
/// them), so a stage costs a typed loop, not a slot per item. A value whose
/// call panicked leaves the chunk, its panic kept by its index.
#[doc(hidden)]
pub struct StageBatch<'a> {
    values: Values<'a>,
    /// The name a panic is reported under: the pipeline's, as when it
    /// runs item by item.
    name: &'static str,
    /// Whether the stage called next is the last: it encodes its results.
    last: bool,
    out: &'a mut Vec<u8>,
    /// How many values the current stage took.
    taken: usize,
    /// The index of each value left, once one has failed (until then, a
    /// value's position is its index).
    left: Option<Vec<u32>>,
    failed: Vec<(u32, Panic)>,
}

enum Values<'a> {
    Encoded(&'a [u8], &'a Limits),
    /// A `Vec` of the next stage's argument type.
    Typed(Box<dyn Any>),
    Taken,
}

impl<'a> StageBatch<'a> {
    /// A chunk of encoded arguments (a sequence) whose last stage's
    /// results, then [`finish`](Self::finish)'s panics, go to `out`.
    pub(crate) fn new(
        args: &'a [u8],
        limits: &'a Limits,
        name: &'static str,
        out: &'a mut Vec<u8>,
    ) -> Self {
        StageBatch {
            values: Values::Encoded(args, limits),
            name,
            last: true,
            out,
            taken: 0,
            left: None,
            failed: Vec::new(),
        }
    }

    /// The name a stage's panic is caught under.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the next stage is the last; set by the pipeline before
    /// each stage, and returned as it was.
    pub(crate) fn set_last(&mut self, last: bool) -> bool {
        std::mem::replace(&mut self.last, last)
    }

    /// The values for a stage taking `A`.
    pub(crate) fn take<A: DeserializeOwned + 'static>(&mut self) -> Result<Vec<A>> {
        let values = match std::mem::replace(&mut self.values, Values::Taken) {
            Values::Encoded(bytes, limits) => codec::decode_seq::<A>(bytes, limits)?,
            Values::Typed(values) => *values
                .downcast::<Vec<A>>()
                .map_err(|_| Error::decode("a pipeline stage got values of another type"))?,
            Values::Taken => return Err(Error::decode("a pipeline stage got no values")),
        };
        self.taken = values.len();
        Ok(values)
    }

    /// A stage's results, and the panics of its calls by their position
    /// in what it took, increasing.
    pub(crate) fn put<R: Serialize + 'static>(
        &mut self,
        results: Vec<R>,
        panics: Vec<(usize, Panic)>,
    ) -> Result<()> {
        if !panics.is_empty() {
            let taken = self.taken as u32;
            let left = self.left.get_or_insert_with(|| (0..taken).collect());
            let mut positions = Vec::with_capacity(panics.len());
            for (at, panic) in panics {
                self.failed.push((left[at], panic));
                positions.push(at);
            }
            let mut positions = positions.into_iter().peekable();
            let mut at = 0;
            left.retain(|_| {
                let failed = positions.next_if_eq(&at).is_some();
                at += 1;
                !failed
            });
        }
        if self.last {
            codec::encode_seq_into(&results, self.out)
        } else {
            self.values = Values::Typed(Box::new(results));
            Ok(())
        }
    }

    /// Appends the panics by index, increasing: with the results the last
    /// stage encoded, what `codec::decode_batch_results` reads.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.failed.sort_by_key(|(at, _)| *at);
        codec::encode_value_into(&self.failed, self.out)
    }
}
