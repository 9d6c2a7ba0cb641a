//! Not public API. Used by generated code.
//!
//! What the macros expand to is [`register_erased!`]: the `SerializableFn`
//! impl and the registry entry of one capture type. Its bodies call the
//! generic helpers below, so that the macros stay thin.

use std::any::{type_name, Any};
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::__serfn_register_erased as register_erased;
pub use crate::compose::ArgTuple;
pub use crate::erased::{ArgSlot, AsyncOutput, Input, Output, Slot, StageBatch};
pub use crate::registry::{Registered, Registration};
pub use crate::registry::{SerializableFn, TypedAsyncFn, TypedFn};
pub use crate::signature::{Kind, Signature, TypeInfo};
pub use ::core::{concat, file, line, module_path, option::Option, result::Result};
pub use {erased_serde, inventory, serde, typetag};

use crate::codec::{self, Limits};
use crate::error::{Error, Result as SerfnResult};

#[cfg(unix)]
#[path = "fuzz.rs"]
pub mod fuzz;

/// A capture type that is serde data. `closure!` and `#[serfn::function]`
/// check it, [`CaptureSend`] and [`CaptureSync`] ahead of everything else,
/// as a field `<Ty as Check<Need>>::Checked` spanned at the capture's type:
/// a field type is checked with the items, before any body, so the first
/// error is serfn's. (Checked directly, a blanket trait reports the bound
/// behind it, serde's or `Send`'s; through [`Check`] it reports its own.)
#[diagnostic::on_unimplemented(
    message = "the capture type `{Self}` is not serde data: serfn sends each capture to other processes",
    label = "needs `Serialize` and `Deserialize`",
    note = "a capture is encoded with its function: `{Self}` must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    note = "derive them on a type of yours (`#[derive(serde::Serialize, serde::Deserialize)]`); \
            for a file, a socket or a connection, capture what opens it (a path, an address) and open it in the body"
)]
pub trait CaptureData: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> CaptureData for T {}

/// A capture type that may move to another thread and borrows nothing: a
/// serializable function is `Send + Sync + 'static`. See [`CaptureData`].
#[diagnostic::on_unimplemented(
    message = "the capture type `{Self}` is not `Send + 'static`, which every serfn function is",
    label = "not `Send + 'static`",
    note = "a serializable function is sent to other threads (a pool's, a future's): each capture must be `Send` and own its data",
    note = "capture an owned `T` instead of an `Rc<T>` (each process decodes its own copy anyway), \
            or an `Arc<T>` (serde's `rc` feature)"
)]
pub trait CaptureSend: Send + 'static {}

impl<T: Send + 'static> CaptureSend for T {}

/// A capture type that threads may share: a serializable function is
/// `Send + Sync + 'static`. See [`CaptureData`].
#[diagnostic::on_unimplemented(
    message = "the capture type `{Self}` is not `Sync`, which every serfn function is",
    label = "not `Sync`",
    note = "a serializable function is shared between threads (a pool's, the registry's): each capture must be `Sync`",
    note = "use a type threads may share: an owned `T` or an `Arc<T>` for `Rc<T>`, \
            a `Mutex<T>` for `RefCell<T>`, an atomic for `Cell<T>`"
)]
pub trait CaptureSync: Sync {}

impl<T: Sync> CaptureSync for T {}

/// What a capture type needs, one at a time: see [`CaptureData`].
pub mod need {
    /// [`CaptureData`](super::CaptureData).
    pub enum Data {}
    /// [`CaptureSend`](super::CaptureSend).
    pub enum Send {}
    /// [`CaptureSync`](super::CaptureSync).
    pub enum Sync {}
}

/// `<Ty as Check<need::Data>>::Checked` is `()` when `Ty: CaptureData`,
/// and so on: see [`CaptureData`].
pub trait Check<Need> {
    /// `()`.
    type Checked;
}

impl<T: CaptureData> Check<need::Data> for T {
    type Checked = ();
}

impl<T: CaptureSend> Check<need::Send> for T {
    type Checked = ();
}

impl<T: CaptureSync> Check<need::Sync> for T {
    type Checked = ();
}

/// Registers a capture type: implements `SerializableFn` for it through
/// typetag and submits its registration to the registry.
///
/// `kind` is `Call`, `CallMut` or `CallOnce`: the trait the type implements
/// for `args`.
#[doc(hidden)]
#[macro_export]
macro_rules! __serfn_register_erased {
    (kind: $kind:ident, ty: $ty:ty, args: $args:ty, name: $name:expr, version: $version:expr $(,)?) => {
        const _: () = {
            use $crate::__private::typetag;

            static __SERFN_REGISTRATION: $crate::__private::Registration = $crate::__private::Registration::new(
                $name,
                $version,
                $crate::__private::Option::Some($crate::__private::signature_of::<$ty, $args, $crate::__private::kind::$kind>),
                $crate::__private::Option::Some($crate::__private::layout_of::<$ty>),
                $crate::__private::decode_as::<$ty>,
                $crate::__private::file!(),
                $crate::__private::line!(),
            )
            .recycled($crate::__private::recyclable::<$ty>());

            $crate::__private::inventory::submit! {
                $crate::__private::Registered(&__SERFN_REGISTRATION)
            }

            #[automatically_derived]
            #[typetag::serde(name = $name)]
            impl $crate::SerializableFn for $ty {
                fn signature(&self) -> $crate::__private::Signature {
                    $crate::__private::signature_of::<$ty, $args, $crate::__private::kind::$kind>()
                }

                fn __serfn_registration(&self) -> &'static $crate::__private::Registration {
                    &__SERFN_REGISTRATION
                }

                fn __serfn_encode_capture(&self, out: &mut ::std::vec::Vec<u8>) -> $crate::Result<()> {
                    $crate::__private::encode_capture(self, out)
                }

                fn __serfn_call(
                    &self,
                    input: $crate::__private::Input<'_>,
                    output: $crate::__private::Output<'_>,
                ) -> $crate::Result<()> {
                    <$crate::__private::kind::$kind as $crate::__private::Invoke<$ty, $args>>::call(self, input, output)
                }

                fn __serfn_call_mut(
                    &mut self,
                    input: $crate::__private::Input<'_>,
                    output: $crate::__private::Output<'_>,
                ) -> $crate::Result<()> {
                    <$crate::__private::kind::$kind as $crate::__private::Invoke<$ty, $args>>::call_mut(self, input, output)
                }

                fn __serfn_call_once(
                    self: ::std::sync::Arc<Self>,
                    input: $crate::__private::Input<'_>,
                    output: $crate::__private::Output<'_>,
                ) -> $crate::Result<()> {
                    <$crate::__private::kind::$kind as $crate::__private::Invoke<$ty, $args>>::call_once(self, input, output)
                }

                fn __serfn_call_async(
                    self: ::std::sync::Arc<Self>,
                    input: $crate::__private::Input<'_>,
                ) -> $crate::Result<$crate::__private::AsyncOutput> {
                    <$crate::__private::kind::$kind as $crate::__private::Invoke<$ty, $args>>::call_async(self, input)
                }

                fn __serfn_batches(&self) -> bool {
                    <$crate::__private::kind::$kind as $crate::__private::Invoke<$ty, $args>>::BATCHES
                }

                fn __serfn_call_batch(
                    &self,
                    args: &[u8],
                    limits: &$crate::Limits,
                    out: &mut ::std::vec::Vec<u8>,
                ) -> $crate::Result<()> {
                    <$crate::__private::kind::$kind as $crate::__private::Invoke<$ty, $args>>::call_batch(self, args, limits, out)
                }

                fn __serfn_batch_stage(
                    &self,
                    batch: &mut $crate::__private::StageBatch<'_>,
                ) -> $crate::Result<()> {
                    <$crate::__private::kind::$kind as $crate::__private::Invoke<$ty, $args>>::batch_stage(self, batch)
                }

                fn __serfn_clone(&self) -> $crate::Result<::std::sync::Arc<dyn $crate::SerializableFn>> {
                    #[allow(unused_imports)]
                    use $crate::__private::{CloneViaClone as _, CloneViaCodec as _};
                    (&&$crate::__private::CloneProbe(self)).__serfn_clone_probe()
                }

                fn __serfn_output_slot(&self) -> ::std::boxed::Box<dyn $crate::__private::ArgSlot> {
                    $crate::__private::output_slot::<$ty, $args, $crate::__private::kind::$kind>()
                }

                fn __serfn_args_after(&self, bound: usize) -> $crate::__private::Option<$crate::__private::TypeInfo> {
                    #[allow(unused_imports)]
                    use $crate::__private::{ArgsViaAny as _, ArgsViaTuple as _};
                    (&&$crate::__private::ArgsProbe::<$args>::new()).__serfn_args_after(bound)
                }

                fn __serfn_check_bound(&self, bound: usize, prefix: &[u8]) -> $crate::Result<()> {
                    #[allow(unused_imports)]
                    use $crate::__private::{ArgsViaAny as _, ArgsViaTuple as _};
                    (&&$crate::__private::ArgsProbe::<$args>::new()).__serfn_check_bound(bound, prefix)
                }

                fn __serfn_pair_last_after(&self, bound: usize) -> bool {
                    #[allow(unused_imports)]
                    use $crate::__private::{ArgsViaAny as _, ArgsViaTuple as _};
                    (&&$crate::__private::ArgsProbe::<$args>::new()).__serfn_pair_last_after(bound)
                }

                fn __serfn_into_stages(self: ::std::sync::Arc<Self>) -> ::std::vec::Vec<::std::sync::Arc<dyn $crate::SerializableFn>> {
                    ::std::vec![self]
                }

                fn __serfn_decode_in_place(&mut self, capture: &[u8]) -> bool {
                    $crate::__private::decode_in_place(self, capture)
                }

                fn __serfn_into_typed(
                    self: ::std::sync::Arc<Self>,
                    target: &mut dyn ::std::any::Any,
                ) -> $crate::__private::Option<::std::sync::Arc<dyn $crate::SerializableFn>> {
                    <$crate::__private::kind::$kind as $crate::__private::Invoke<$ty, $args>>::into_typed(self, target)
                }
            }
        };
    };
}

/// Runs a chunk as a pool's worker does: in one typed pass when `f`
/// batches (`args`, the encoded sequence), else item by item (`items`).
/// For the instructions bench.
#[cfg(unix)]
pub fn run_chunk(
    f: &crate::DynFn,
    args: &[u8],
    items: &[&[u8]],
    limits: &Limits,
    out: &mut Vec<u8>,
) -> SerfnResult<()> {
    if f.batches() {
        f.call_batch(args, limits, out)
    } else {
        f.call_each(items, limits, out)
    }
}

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

/// The layout of the capture type `T`, traced once.
pub fn layout_of<T: DeserializeOwned + 'static>() -> &'static crate::schema::Layout {
    crate::schema::layout_of::<T>()
}

/// The registry's decoder for `T`: all of `capture`, typed, with no
/// type-erased serde in between; unguarded without `limits`.
pub fn decode_as<T: SerializableFn + DeserializeOwned>(
    capture: &[u8],
    limits: Option<&Limits>,
) -> SerfnResult<Arc<dyn SerializableFn>> {
    let capture = match limits {
        Some(limits) => codec::decode_value::<T>(capture, limits)?,
        None => codec::decode_fixed::<T>(capture)?,
    };
    Ok(Arc::new(capture))
}

/// Whether a decoded `T`'s allocation may be reused: `T` has no drop glue
/// (nothing observable happens when the last one is dropped late, and it
/// holds no memory elsewhere) and is small.
pub const fn recyclable<T>() -> bool {
    !std::mem::needs_drop::<T>() && std::mem::size_of::<T>() <= MAX_RECYCLED
}

/// The largest capture whose allocation a thread keeps for the next decode.
const MAX_RECYCLED: usize = 256;

/// Decodes `capture` into `f` if `T` is [`recyclable`]: unguarded, as the
/// handles only recycle captures of a fixed layout decoded outside any
/// guarded decode. `false`, `f` as it was, if not or if it fails.
pub fn decode_in_place<T: DeserializeOwned>(f: &mut T, capture: &[u8]) -> bool {
    if !recyclable::<T>() {
        return false;
    }
    match codec::decode_fixed::<T>(capture) {
        Ok(decoded) => {
            *f = decoded;
            true
        }
        Err(_) => false,
    }
}

/// Appends the encoding of the capture `f`.
pub fn encode_capture<T: Serialize>(f: &T, out: &mut Vec<u8>) -> SerfnResult<()> {
    codec::encode_value_into(f, out)
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
        let args: Vec<A> = codec::decode_seq(args, limits)?;
        let (results, panics) = call_each(f, f.name(), args)?;
        let panics: Vec<_> = panics
            .into_iter()
            .map(|(at, panic)| (at as u32, panic))
            .collect();
        // What `codec::decode_batch_results` reads: the pair, its parts one
        // after the other.
        codec::encode_seq_into(&results, out)?;
        codec::encode_value_into(&panics, out)
    }

    fn batch_stage(f: &T, batch: &mut StageBatch<'_>) -> SerfnResult<()> {
        let args: Vec<A> = batch.take()?;
        let (results, panics) = call_each(f, batch.name(), args)?;
        batch.put(results, panics)
    }
}

/// Calls `f` on each of `args`: the results of the calls that returned, in
/// order, and each panic with the index of its argument, named `name`.
#[allow(clippy::type_complexity)]
fn call_each<T, A>(
    f: &T,
    name: &str,
    args: Vec<A>,
) -> SerfnResult<(Vec<T::Output>, Vec<(usize, crate::error::Panic)>)>
where
    T: crate::Call<A>,
    A: Serialize + DeserializeOwned + 'static,
{
    let mut results = Vec::with_capacity(args.len());
    let mut panics = Vec::new();
    let (mut args, mut taken) = (args.into_iter(), 0);
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
    Ok((results, panics))
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

/// Autoref specialization: `(&&CloneProbe(x)).__serfn_clone_probe()` clones
/// `x` with `Clone` when it has it, through the codec otherwise.
pub struct CloneProbe<'a, T>(pub &'a T);

/// The `Clone` path of [`CloneProbe`].
pub trait CloneViaClone {
    /// A deep copy.
    fn __serfn_clone_probe(&self) -> SerfnResult<Arc<dyn SerializableFn>>;
}

impl<T: Clone + SerializableFn> CloneViaClone for &CloneProbe<'_, T> {
    fn __serfn_clone_probe(&self) -> SerfnResult<Arc<dyn SerializableFn>> {
        Ok(Arc::new(self.0.clone()))
    }
}

/// The codec path of [`CloneProbe`].
pub trait CloneViaCodec {
    /// A deep copy.
    fn __serfn_clone_probe(&self) -> SerfnResult<Arc<dyn SerializableFn>>;
}

impl<T: SerializableFn + Serialize + DeserializeOwned> CloneViaCodec for CloneProbe<'_, T> {
    fn __serfn_clone_probe(&self) -> SerfnResult<Arc<dyn SerializableFn>> {
        // In-memory data of our own: no limits to enforce.
        let bytes = codec::encode_value(self.0)?;
        Ok(Arc::new(codec::decode_value::<T>(
            &bytes,
            &Limits::unlimited(),
        )?))
    }
}

/// Autoref specialization: what binding leaves of an argument type, for
/// tuples ([`ArgTuple`]) and for any other type (nothing can be bound).
pub struct ArgsProbe<A>(PhantomData<A>);

impl<A> ArgsProbe<A> {
    /// The probe.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        ArgsProbe(PhantomData)
    }
}

/// The tuple path of [`ArgsProbe`].
pub trait ArgsViaTuple {
    /// The type left after binding `bound` leading elements.
    fn __serfn_args_after(&self, bound: usize) -> Option<TypeInfo>;
    /// Checks a bound prefix of `bound` elements.
    fn __serfn_check_bound(&self, bound: usize, prefix: &[u8]) -> SerfnResult<()>;
    /// Whether the rest after `bound` elements is the last of a pair.
    fn __serfn_pair_last_after(&self, bound: usize) -> bool;
}

impl<A: ArgTuple> ArgsViaTuple for &ArgsProbe<A> {
    fn __serfn_args_after(&self, bound: usize) -> Option<TypeInfo> {
        A::after(bound)
    }

    fn __serfn_check_bound(&self, bound: usize, prefix: &[u8]) -> SerfnResult<()> {
        A::check_prefix(bound, prefix)
    }

    fn __serfn_pair_last_after(&self, bound: usize) -> bool {
        A::pair_last(bound)
    }
}

/// The non-tuple path of [`ArgsProbe`].
pub trait ArgsViaAny {
    /// The type itself, when nothing is bound.
    fn __serfn_args_after(&self, bound: usize) -> Option<TypeInfo>;
    /// Only an empty prefix of nothing bound.
    fn __serfn_check_bound(&self, bound: usize, prefix: &[u8]) -> SerfnResult<()>;
    /// Never: not a pair.
    fn __serfn_pair_last_after(&self, bound: usize) -> bool;
}

impl<A: DeserializeOwned + 'static> ArgsViaAny for ArgsProbe<A> {
    fn __serfn_args_after(&self, bound: usize) -> Option<TypeInfo> {
        (bound == 0).then(TypeInfo::of::<A>)
    }

    fn __serfn_check_bound(&self, bound: usize, prefix: &[u8]) -> SerfnResult<()> {
        crate::compose::check_nothing_bound(bound, prefix)
    }

    fn __serfn_pair_last_after(&self, _: usize) -> bool {
        false
    }
}
