//! [`DynFn`]: a function whose types the holder does not know.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::wire;
use crate::codec::{self, Limits};
#[cfg(all(unix, feature = "tokio"))]
use crate::erased::AsyncOutput;
use crate::erased::{Input, Output};
use crate::error::{Error, Result};
use crate::registry::SerializableFn;
use crate::signature::{Kind, Signature};

/// A serialized function whose argument and output types the holder does
/// not know: what a worker decodes and calls, bytes in and bytes out.
///
/// Decoding still checks the name, version and the signature and layout fingerprints
/// against this binary's registry. [`SerFn::try_from`](crate::SerFn) and its
/// siblings give the types back.
///
/// # Example
/// ```
/// use serfn::{codec, DynFn, Limits};
///
/// let f = serfn::closure!("square", [], move |x: i64| -> i64 { x * x });
/// let worker_side = DynFn::from_bytes(&f.to_bytes()?)?;
/// let output = worker_side.call_bytes(&codec::encode_value(&7i64)?)?;
/// assert_eq!(codec::decode_result::<i64>(&output, &Limits::default())?, 49);
/// # Ok::<(), serfn::Error>(())
/// ```
pub struct DynFn {
    inner: Arc<dyn SerializableFn>,
    /// `inner`'s kind, read once: a worker checks it for each call, and
    /// building the signature took ~50 of a small item's instructions.
    kind: Kind,
}

impl DynFn {
    pub(crate) fn from_arc(inner: Arc<dyn SerializableFn>) -> Self {
        let kind = inner.signature().kind();
        DynFn { inner, kind }
    }

    pub(crate) fn into_arc(self) -> Arc<dyn SerializableFn> {
        self.inner
    }

    /// The registered name.
    ///
    /// # Example
    /// ```
    /// let f = serfn::closure!("neg", [], move |x: i8| -> i8 { -x }, name = "examples::neg");
    /// assert_eq!(f.into_dyn().name(), "examples::neg");
    /// ```
    pub fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// The function's signature: what a caller must encode, and what it gets back.
    ///
    /// # Example
    /// ```
    /// use serfn::plumbing::Kind;
    ///
    /// let f = serfn::closure!(mut "count", [n: u32 = 0], move |(): ()| -> u32 { *n += 1; *n });
    /// let sig = f.into_dyn().signature();
    /// assert_eq!(sig.kind(), Kind::FnMut);
    /// assert_eq!((sig.args().name(), sig.output().name()), ("()", "u32"));
    /// ```
    pub fn signature(&self) -> Signature {
        self.inner.signature()
    }

    /// Encodes the function and its capture (its current state, for an `FnMut`).
    ///
    /// # Errors
    /// [`Error::Encode`] if the capture's `Serialize` impl fails.
    ///
    /// # Example
    /// ```
    /// use serfn::{codec, DynFn, Limits};
    ///
    /// let mut count = DynFn::from_bytes(
    ///     &serfn::closure!(mut "count", [n: u32 = 0], move |(): ()| -> u32 { *n += 1; *n }).to_bytes()?,
    /// )?;
    /// count.call_bytes_mut(&codec::encode_value(&())?)?;
    /// // The state travels: decoded again, the count goes on from 1.
    /// let out = DynFn::from_bytes(&count.to_bytes()?)?.call_bytes_mut(&codec::encode_value(&())?)?;
    /// assert_eq!(codec::decode_result::<u32>(&out, &Limits::default())?, 2);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        codec::to_bytes(self)
    }

    /// Decodes any registered function, under the default [`Limits`].
    ///
    /// # Errors
    /// As [`from_bytes`](crate::from_bytes).
    ///
    /// # Example
    /// ```
    /// use serfn::DynFn;
    ///
    /// let bytes = serfn::closure!("neg", [], move |x: i8| -> i8 { -x }).to_bytes()?;
    /// // Any registered function, whatever its types.
    /// assert_eq!(DynFn::from_bytes(&bytes)?.signature().to_string(), "Fn(i8) -> i8");
    /// let mut damaged = bytes.clone();
    /// damaged[10] ^= 1;
    /// assert!(matches!(DynFn::from_bytes(&damaged), Err(serfn::Error::Checksum { .. })));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        codec::from_bytes(bytes)
    }

    /// Calls an `Fn` function: decodes the arguments from `args` (made by
    /// [`codec::encode_value`](crate::codec::encode_value)), calls, and
    /// returns the encoded result, or the encoded panic if it panicked.
    /// [`codec::decode_result`](crate::codec::decode_result) reads either.
    ///
    /// # Errors
    /// [`Error::SignatureMismatch`] if the function is not `Fn`; as
    /// [`codec::decode_value`](crate::codec::decode_value) if `args` is bad.
    /// A panic is not an error here: it is in the output.
    ///
    /// # Example
    /// ```
    /// use serfn::{codec, DynFn, Limits};
    ///
    /// let root = serfn::closure!("root", [], move |x: f64| -> f64 {
    ///     assert!(x >= 0.0, "no root of {x}");
    ///     x.sqrt()
    /// });
    /// let root = DynFn::from_bytes(&root.to_bytes()?)?;
    /// let limits = Limits::default();
    /// let out = root.call_bytes(&codec::encode_value(&9.0f64)?)?;
    /// assert_eq!(codec::decode_result::<f64>(&out, &limits)?, 3.0);
    /// let out = root.call_bytes(&codec::encode_value(&-1.0f64)?)?;
    /// assert!(matches!(codec::decode_result::<f64>(&out, &limits), Err(serfn::Error::Panicked { .. })));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn call_bytes(&self, args: &[u8]) -> Result<Vec<u8>> {
        self.require(Kind::Fn)?;
        let mut out = Vec::new();
        let f = &*self.inner;
        catching(
            self.name(),
            |i, o| f.__serfn_call(i, o),
            args,
            &Limits::default(),
            &mut out,
        )?;
        Ok(out)
    }

    /// Calls an `Fn` or `FnMut` function through bytes, as
    /// [`call_bytes`](Self::call_bytes); the state it leaves is what
    /// [`to_bytes`](Self::to_bytes) encodes next.
    ///
    /// # Errors
    /// As [`call_bytes`](Self::call_bytes), for a function that is not `Fn` or `FnMut`.
    ///
    /// # Example
    /// ```
    /// use serfn::{codec, DynFn, Limits};
    ///
    /// let total = serfn::closure!(mut "total", [sum: i64 = 0], move |x: i64| -> i64 { *sum += x; *sum });
    /// let mut total = total.into_dyn();
    /// for x in [40, 2] {
    ///     total.call_bytes_mut(&codec::encode_value(&x)?)?;
    /// }
    /// let out = total.call_bytes_mut(&codec::encode_value(&0i64)?)?;
    /// assert_eq!(codec::decode_result::<i64>(&out, &Limits::default())?, 42);
    /// // `call_bytes` refuses it: an `FnMut` needs `&mut`.
    /// assert!(matches!(total.call_bytes(&[0]), Err(serfn::Error::SignatureMismatch { .. })));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn call_bytes_mut(&mut self, args: &[u8]) -> Result<Vec<u8>> {
        self.require(Kind::FnMut)?;
        let (name, limits, mut out) = (self.name(), Limits::default(), Vec::new());
        match Arc::get_mut(&mut self.inner) {
            Some(f) => catching(
                name,
                |i, o| f.__serfn_call_mut(i, o),
                args,
                &limits,
                &mut out,
            )?,
            // Shared only when it is an `Fn` (see `Clone`): no state to keep.
            None => {
                let f = &*self.inner;
                catching(name, |i, o| f.__serfn_call(i, o), args, &limits, &mut out)?
            }
        }
        Ok(out)
    }

    /// Calls any function through bytes, consuming it.
    ///
    /// # Errors
    /// As [`call_bytes`](Self::call_bytes).
    ///
    /// # Example
    /// ```
    /// use serfn::{codec, DynFn, Limits};
    ///
    /// let text = String::from("moved, not copied");
    /// let take = serfn::closure!(once "take", [text: String], move |(): ()| -> String { text });
    /// let out = take.into_dyn().call_bytes_once(&codec::encode_value(&())?)?;
    /// assert_eq!(codec::decode_result::<String>(&out, &Limits::default())?, "moved, not copied");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn call_bytes_once(self, args: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.call_once_into(args, &Limits::default(), &mut out)?;
        Ok(out)
    }

    #[cfg(unix)] // for the pool's and the fleet's workers
    /// Calls an `Fn` function once per encoded argument in `items`, under
    /// `limits`, appending to `out` the encoding of the sequence of outputs
    /// (each the bytes [`call_bytes`](Self::call_bytes) returns), which
    /// [`codec::decode_results`] reads in one pass.
    pub(crate) fn call_each(
        &self,
        items: &[&[u8]],
        limits: &Limits,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.require(Kind::Fn)?;
        let (name, f) = (self.name(), &*self.inner);
        codec::encode_len_into(items.len(), out)?;
        for args in items {
            catching(name, |i, o| f.__serfn_call(i, o), args, limits, out)?;
        }
        Ok(())
    }

    #[cfg(unix)] // for the pool
    /// Appends the envelope [`to_bytes`](Self::to_bytes) returns to `out`.
    pub(crate) fn to_bytes_into(&self, out: &mut Vec<u8>) -> Result<()> {
        wire::write_envelope(&*self.inner, out)
    }

    #[cfg(target_os = "linux")] // for the pool's shared memory
    /// Whether the capture encodes to at most `cap` bytes (not counted past it).
    pub(crate) fn capture_fits(&self, cap: u64) -> Result<bool> {
        wire::capture_fits(&*self.inner, cap)
    }

    #[cfg(target_os = "linux")] // for the pool's shared memory
    /// Writes the envelope [`to_bytes`](Self::to_bytes) returns to `sink`,
    /// from its start, a few bytes in ([`Written::skip`](codec::Written)),
    /// never holding it whole.
    pub(crate) fn stream_bytes<S: codec::Sink>(&self, sink: &mut S) -> Result<codec::Written> {
        wire::stream_envelope(&*self.inner, sink)
    }

    #[cfg(all(unix, feature = "tokio"))] // for the workers' runtimes
    /// Starts an async call of an `Async` function on the encoded `args`:
    /// the future of the result's encoding (the value alone).
    pub(crate) fn start_async(&self, args: &[u8], limits: &Limits) -> Result<AsyncOutput> {
        self.require(Kind::Async)?;
        Arc::clone(&self.inner).__serfn_call_async(Input::Bytes(args, limits))
    }

    #[cfg(unix)] // for the pool's and the fleet's workers
    /// Whether [`call_batch`](Self::call_batch) works for this function.
    pub(crate) fn batches(&self) -> bool {
        self.inner.__serfn_batches()
    }

    #[cfg(unix)] // for the pool's and the fleet's workers
    /// Calls an `Fn` function once per element of `args`, the codec
    /// encoding of a sequence of arguments, in one typed pass; appends what
    /// [`call_each`](Self::call_each) appends.
    pub(crate) fn call_batch(&self, args: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<()> {
        self.require(Kind::Fn)?;
        self.inner.__serfn_call_batch(args, limits, out)
    }

    #[cfg(unix)] // for the pool's and the fleet's workers
    /// [`call_each`](Self::call_each) for an `Fn` or `FnMut` function, which
    /// keeps its state between the calls.
    pub(crate) fn call_each_mut(
        &mut self,
        items: &[&[u8]],
        limits: &Limits,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.require(Kind::FnMut)?;
        let name = self.name();
        if Arc::get_mut(&mut self.inner).is_none() {
            self.inner = self.inner.__serfn_clone()?;
        }
        let f = Arc::get_mut(&mut self.inner).expect("a fresh deep copy is not shared");
        codec::encode_len_into(items.len(), out)?;
        for args in items {
            catching(name, |i, o| f.__serfn_call_mut(i, o), args, limits, out)?;
        }
        Ok(())
    }

    /// Calls any function once, consuming it; appends the output as
    /// [`call_bytes`](Self::call_bytes) returns it.
    pub(crate) fn call_once_into(
        self,
        args: &[u8],
        limits: &Limits,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let name = self.name();
        catching(
            name,
            |i, o| self.inner.__serfn_call_once(i, o),
            args,
            limits,
            out,
        )
    }

    #[inline]
    fn require(&self, wanted: Kind) -> Result<()> {
        if self.kind.can_act_as(wanted) {
            return Ok(());
        }
        self.mismatch(wanted)
    }

    #[cold]
    fn mismatch(&self, wanted: Kind) -> Result<()> {
        let found = self.signature();
        Err(Error::SignatureMismatch {
            name: self.name().into(),
            expected: Signature::new(wanted, found.args(), found.output()).to_string(),
            found: found.to_string(),
        })
    }
}

/// Calls, appending the encoded result to `out`, or the encoded panic in its place.
fn catching(
    name: &'static str,
    call: impl FnOnce(Input<'_>, Output<'_>) -> Result<()>,
    args: &[u8],
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    match crate::error::catch(name, || {
        call(Input::Bytes(args, limits), Output::Bytes(&mut *out))
    }) {
        Ok(result) => result,
        Err(panic) => {
            out.truncate(start);
            out.extend_from_slice(&codec::encode_panic(&panic)?);
            Ok(())
        }
    }
}

impl fmt::Debug for DynFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DynFn")
            .field(&self.inner.name())
            .field(&format_args!("{}", self.inner.signature()))
            .finish()
    }
}

impl Clone for DynFn {
    /// Shares an `Fn` function; deep-copies any other, as [`SerFnMut`](crate::SerFnMut) does.
    ///
    /// # Panics
    /// As [`SerFnMut`](crate::SerFnMut)'s `clone`.
    fn clone(&self) -> Self {
        if self.signature().kind() == Kind::Fn {
            return DynFn::from_arc(Arc::clone(&self.inner));
        }
        let inner = self.inner.__serfn_clone().unwrap_or_else(|error| {
            panic!("cannot clone serfn function `{}`: {error}", self.name())
        });
        DynFn::from_arc(inner)
    }
}

impl Serialize for DynFn {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        wire::serialize(&*self.inner, serializer)
    }
}

impl<'de> Deserialize<'de> for DynFn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        wire::deserialize(deserializer, None).map(DynFn::from_arc)
    }
}
