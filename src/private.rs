//! Not public API. Used by generated code.
//!
//! What the macros expand to is [`register_erased!`]: the `SerializableFn`
//! impl and the registry entry of one capture type. Its bodies call the
//! generic helpers below, so that the macros stay thin.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::__serfn_register_erased as register_erased;
pub use crate::codec::CaptureWriter;
pub use crate::compose::ArgTuple;
pub use crate::erased::{ArgSlot, AsyncOutput, Input, Output, Slot, StageBatch};
pub use crate::registry::{Registered, Registration};
pub use crate::registry::{SerializableFn, TypedAsyncFn, TypedFn};
pub use crate::signature::{Kind, Signature, TypeInfo};
pub use ::core::{concat, file, line, module_path, option::Option, result::Result};
pub use {erased_serde, inventory, serde, typetag};

use crate::codec::{self, Limits};
use crate::error::Result as SerfnResult;

#[cfg(unix)]
#[path = "fuzz.rs"]
pub mod fuzz;
#[path = "private/invoke.rs"]
mod invoke;
#[path = "private/spare.rs"]
mod spare;

pub use self::invoke::{kind, output_slot, signature_of, Invoke};

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

                fn __serfn_write_capture(&self, out: &mut $crate::__private::CaptureWriter<'_>) -> $crate::Result<()> {
                    $crate::__private::write_capture(self, out)
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

/// Writes a capture's encoding to `out`: `__serfn_write_capture`'s body.
pub fn write_capture<T: Serialize>(f: &T, out: &mut CaptureWriter<'_>) -> SerfnResult<()> {
    codec::write_value(f, out)
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
