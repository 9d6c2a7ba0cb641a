//! How generated code calls a capture type through the trait it
//! implements (`Call`, `CallMut`, `CallOnce`, `AsyncCall`): the [`Invoke`]
//! impls behind each `SerializableFn` method.

use std::any::{type_name, Any};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{AsyncOutput, Input, Output, StageBatch};
use crate::codec::{self, Limits};
use crate::erased::{ArgSlot, Slot};
use crate::error::{Error, Result as SerfnResult};
use crate::registry::{SerializableFn, TypedAsyncFn, TypedFn};
use crate::signature::{Kind, Signature};

/// Marker types naming the three typed traits.
pub mod kind {
    /// [`Call`](crate::Call): `Fn`.
    pub struct Call;
    /// [`CallMut`](crate::CallMut): `FnMut`.
    pub struct CallMut;
    /// [`CallOnce`](crate::CallOnce): `FnOnce`.
    pub struct CallOnce;
    /// [`AsyncCall`](crate::AsyncCall): `Async`.
    pub struct AsyncCall;
}

/// How to call a `T` that implements the trait `Self` names, for `A`.
pub trait Invoke<T, A> {
    /// The function's output type.
    type Output: Serialize + DeserializeOwned + 'static;
    /// The function's kind.
    const KIND: Kind;
    /// Calls through `&T`.
    fn call(f: &T, input: Input<'_>, output: Output<'_>) -> SerfnResult<()>;
    /// Calls through `&mut T`.
    fn call_mut(f: &mut T, input: Input<'_>, output: Output<'_>) -> SerfnResult<()>;
    /// Calls, consuming `T` if it is not shared (cloning it if it is).
    fn call_once(f: Arc<T>, input: Input<'_>, output: Output<'_>) -> SerfnResult<()>;
    /// Moves `f` into `target` if it is its typed call target (`Fn` only);
    /// otherwise gives it back.
    fn into_typed(f: Arc<T>, target: &mut dyn Any) -> Option<Arc<dyn SerializableFn>>
    where
        T: SerializableFn,
    {
        let _ = target;
        Some(f)
    }
    /// Starts an async call (`Async` only): the argument taken now, the
    /// result encoded when the future is done.
    fn call_async(f: Arc<T>, input: Input<'_>) -> SerfnResult<AsyncOutput>
    where
        T: SerializableFn,
    {
        let _ = input;
        Err(wrong_kind(&*f, Kind::Async))
    }
    /// Whether [`call_batch`](Self::call_batch) is implemented: for `Fn` only.
    const BATCHES: bool = false;
    /// Calls once per element of the encoded sequence `args`, appending the
    /// encoded sequence of outcomes (see `SerializableFn::__serfn_call_batch`).
    fn call_batch(f: &T, args: &[u8], limits: &Limits, out: &mut Vec<u8>) -> SerfnResult<()>
    where
        T: SerializableFn,
    {
        let _ = (args, limits, out);
        Err(wrong_kind(f, Kind::Fn))
    }
    /// Runs as one stage of a pipeline's chunk (see `StageBatch`).
    fn batch_stage(f: &T, batch: &mut StageBatch<'_>) -> SerfnResult<()>
    where
        T: SerializableFn,
    {
        let _ = batch;
        Err(wrong_kind(f, Kind::Fn))
    }
}

/// The signature of `T` registered as `K` for `A`.
pub fn signature_of<T, A: DeserializeOwned + 'static, K: Invoke<T, A>>() -> Signature {
    Signature::of::<A, K::Output>(K::KIND)
}

/// An empty output slot of `T`'s output type.
pub fn output_slot<T, A, K: Invoke<T, A>>() -> Box<dyn ArgSlot> {
    Box::new(Slot::<K::Output>(None))
}

fn take_args<A: DeserializeOwned + 'static>(input: Input<'_>) -> SerfnResult<A> {
    match input {
        Input::Slot(slot) => slot
            .as_any()
            .downcast_mut::<Option<A>>()
            .and_then(Option::take)
            .ok_or_else(|| wrong_slot::<A>()),
        Input::Bytes(bytes, limits) => codec::decode_value(bytes, limits),
        Input::Prefixed(prefix, rest) => {
            let mut bytes = prefix.to_vec();
            rest.encode_into(&mut bytes)?;
            // The prefix was checked as these types when the `bind` was
            // built or decoded, and the rest is our own encoding: no limit
            // to enforce, and none that could make a valid call fail.
            codec::decode_value(&bytes, &Limits::unlimited())
        }
    }
}

fn put_output<R: Serialize + 'static>(output: Output<'_>, result: R) -> SerfnResult<()> {
    match output {
        Output::Slot(slot) => {
            *slot
                .downcast_mut::<Option<R>>()
                .ok_or_else(|| wrong_slot::<R>())? = Some(result);
            Ok(())
        }
        Output::Bytes(buf) => codec::encode_ok_into(&result, buf),
        Output::Value(buf) => codec::encode_value_into(&result, buf),
    }
}

/// A slot of another type: the handles check signatures, so this is a bug.
fn wrong_slot<T>() -> Error {
    Error::SignatureMismatch {
        name: "(in-process call)".into(),
        expected: type_name::<T>().into(),
        found: "a slot of another type".into(),
    }
}

fn wrong_kind<T: SerializableFn>(f: &T, wanted: Kind) -> Error {
    let found = f.signature();
    Error::SignatureMismatch {
        name: f.name().into(),
        expected: Signature::new(wanted, found.args(), found.output()).to_string(),
        found: found.to_string(),
    }
}

impl<T, A> Invoke<T, A> for kind::Call
where
    T: crate::Call<A> + SerializableFn,
    A: Serialize + DeserializeOwned + 'static,
{
    type Output = T::Output;
    const KIND: Kind = Kind::Fn;

    fn call(f: &T, input: Input<'_>, output: Output<'_>) -> SerfnResult<()> {
        put_output(output, f.call(take_args(input)?))
    }

    fn call_mut(f: &mut T, input: Input<'_>, output: Output<'_>) -> SerfnResult<()> {
        Self::call(f, input, output)
    }

    fn call_once(f: Arc<T>, input: Input<'_>, output: Output<'_>) -> SerfnResult<()> {
        Self::call(&*f, input, output)
    }

    fn into_typed(f: Arc<T>, target: &mut dyn Any) -> Option<Arc<dyn SerializableFn>> {
        match target.downcast_mut::<Option<Arc<dyn TypedFn<A, T::Output>>>>() {
            Some(slot) => {
                *slot = Some(f);
                None
            }
            None => Some(f),
        }
    }

    const BATCHES: bool = true;

    fn call_batch(f: &T, args: &[u8], limits: &Limits, out: &mut Vec<u8>) -> SerfnResult<()> {
        // A sequence of one: at one item per message, the `Vec`s of the
        // argument and the result took four allocations and a fifth of a
        // worker's ~1,500 instructions.
        if let Some(arg) = codec::one_seq_element(args) {
            return call_one_batched(f, decode_one(arg, limits)?, out);
        }
        // The `Vec`s of the last batch of these types: their memory is there.
        let mut values: Vec<A> = super::spare::take();
        codec::decode_seq_into(args, limits, &mut values)?;
        let mut results = super::spare::take();
        let panics = call_each_into(f, f.name(), values.drain(..), &mut results)?;
        let panics: Vec<_> = panics
            .into_iter()
            .map(|(at, panic)| (at as u32, panic))
            .collect();
        // What `codec::decode_batch_results` reads: the pair, its parts one
        // after the other.
        codec::encode_seq_into(&results, out)?;
        super::spare::keep(values);
        super::spare::keep(results);
        codec::encode_value_into(&panics, out)
    }

    fn batch_stage(f: &T, batch: &mut StageBatch<'_>) -> SerfnResult<()> {
        let mut args: Vec<A> = batch.take()?;
        // A stage's arguments are the last one's results: two `Vec`s in turn.
        let mut results = super::spare::take();
        let panics = call_each_into(f, batch.name(), args.drain(..), &mut results)?;
        super::spare::keep(args);
        batch.put(results, panics)
    }
}

/// The argument of a batch of one: a plain number as its bytes (on Unix,
/// where workers run), else decoded under `limits`.
fn decode_one<A: DeserializeOwned + 'static>(arg: &[u8], limits: &Limits) -> SerfnResult<A> {
    #[cfg(unix)]
    if let Some(plain) = codec::plain::decode_exact(arg) {
        return Ok(plain);
    }
    codec::decode_value(arg, limits)
}

/// [`Invoke::call_batch`] of one argument: appends what that of a `Vec` of
/// it does, byte for byte.
fn call_one_batched<T, A>(f: &T, arg: A, out: &mut Vec<u8>) -> SerfnResult<()>
where
    T: crate::Call<A> + SerializableFn,
    A: Serialize + DeserializeOwned + 'static,
{
    match crate::error::catch(f.name(), || f.call(arg)) {
        Ok(result) => {
            codec::encode_one_seq_into(&result, out)?;
            codec::encode_len_into(0, out)
        }
        Err(panic) => {
            codec::encode_len_into(0, out)?;
            // A slice, as the `Vec` is: an array would be a tuple, without its length.
            codec::encode_value_into(std::slice::from_ref(&(0u32, panic)), out)
        }
    }
}

/// Calls `f` on each of `args`, appending the results of the calls that
/// returned to `results` (empty), in order; returns each panic with the
/// index of its argument, named `name`.
fn call_each_into<T, A>(
    f: &T,
    name: &str,
    mut args: impl ExactSizeIterator<Item = A>,
    results: &mut Vec<T::Output>,
) -> SerfnResult<Vec<(usize, crate::error::Panic)>>
where
    T: crate::Call<A>,
    A: Serialize + DeserializeOwned + 'static,
{
    results.reserve(args.len());
    let mut panics = Vec::new();
    let mut taken = 0;
    // One catch per run of calls that return, not one per call: the call
    // inlines into `extend`'s loop, which keeps what it wrote when a call
    // panics.
    while let Err(panic) = crate::error::catch(name, || {
        results.extend(args.by_ref().map(|args| {
            taken += 1;
            f.call(args)
        }));
    }) {
        let at = taken - 1;
        if results.len() + panics.len() != at {
            return Err(Error::encode("a batch's results were lost to a panic"));
        }
        panics.push((at, panic));
    }
    Ok(panics)
}

impl<T, A> Invoke<T, A> for kind::CallMut
where
    T: crate::CallMut<A> + SerializableFn,
    A: Serialize + DeserializeOwned + 'static,
{
    type Output = T::Output;
    const KIND: Kind = Kind::FnMut;

    fn call(f: &T, _: Input<'_>, _: Output<'_>) -> SerfnResult<()> {
        Err(wrong_kind(f, Kind::Fn))
    }

    fn call_mut(f: &mut T, input: Input<'_>, output: Output<'_>) -> SerfnResult<()> {
        put_output(output, f.call_mut(take_args(input)?))
    }

    fn call_once(f: Arc<T>, input: Input<'_>, output: Output<'_>) -> SerfnResult<()> {
        match Arc::try_unwrap(f) {
            Ok(mut f) => Self::call_mut(&mut f, input, output),
            Err(shared) => shared.__serfn_clone()?.__serfn_call_once(input, output),
        }
    }
}

impl<T, A> Invoke<T, A> for kind::CallOnce
where
    T: crate::CallOnce<A> + SerializableFn,
    A: Serialize + DeserializeOwned + 'static,
{
    type Output = T::Output;
    const KIND: Kind = Kind::FnOnce;

    fn call(f: &T, _: Input<'_>, _: Output<'_>) -> SerfnResult<()> {
        Err(wrong_kind(f, Kind::Fn))
    }

    fn call_mut(f: &mut T, _: Input<'_>, _: Output<'_>) -> SerfnResult<()> {
        Err(wrong_kind(f, Kind::FnMut))
    }

    fn call_once(f: Arc<T>, input: Input<'_>, output: Output<'_>) -> SerfnResult<()> {
        match Arc::try_unwrap(f) {
            Ok(f) => put_output(output, f.call_once(take_args(input)?)),
            Err(shared) => shared.__serfn_clone()?.__serfn_call_once(input, output),
        }
    }
}

impl<T, A> Invoke<T, A> for kind::AsyncCall
where
    T: crate::AsyncCall<A> + SerializableFn,
    A: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = T::Output;
    const KIND: Kind = Kind::Async;

    fn call(f: &T, _: Input<'_>, _: Output<'_>) -> SerfnResult<()> {
        Err(wrong_kind(f, Kind::Fn))
    }

    fn call_mut(f: &mut T, _: Input<'_>, _: Output<'_>) -> SerfnResult<()> {
        Err(wrong_kind(f, Kind::FnMut))
    }

    fn call_once(f: Arc<T>, _: Input<'_>, _: Output<'_>) -> SerfnResult<()> {
        Err(wrong_kind(&*f, Kind::FnOnce))
    }

    fn call_async(f: Arc<T>, input: Input<'_>) -> SerfnResult<AsyncOutput> {
        let args: A = take_args(input)?;
        Ok(Box::pin(async move {
            let result = f.call(args).await;
            codec::encode_value(&result)
        }))
    }

    fn into_typed(f: Arc<T>, target: &mut dyn Any) -> Option<Arc<dyn SerializableFn>> {
        match target.downcast_mut::<Option<Arc<dyn TypedAsyncFn<A, T::Output>>>>() {
            Some(slot) => {
                *slot = Some(f);
                None
            }
            None => Some(f),
        }
    }
}
