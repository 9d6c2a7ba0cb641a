//! [`DynFn`]: a function whose types the holder does not know.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::wire;
use crate::codec::{self, Limits};
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
}

impl DynFn {
    pub(crate) fn from_arc(inner: Arc<dyn SerializableFn>) -> Self {
        DynFn { inner }
    }

    pub(crate) fn into_arc(self) -> Arc<dyn SerializableFn> {
        self.inner
    }

    /// The registered name.
    pub fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// The function's signature.
    pub fn signature(&self) -> Signature {
        self.inner.signature()
    }

    /// Encodes the function and its capture (its current state, for an `FnMut`).
    ///
    /// # Errors
    /// [`Error::Encode`] if the capture's `Serialize` impl fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        codec::to_bytes(self)
    }

    /// Decodes any registered function, under the default [`Limits`].
    ///
    /// # Errors
    /// As [`from_bytes`](crate::from_bytes).
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
    pub fn call_bytes_once(self, args: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.call_once_into(args, &Limits::default(), &mut out)?;
        Ok(out)
    }

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

    /// Whether [`call_batch`](Self::call_batch) works for this function.
    pub(crate) fn batches(&self) -> bool {
        self.inner.__serfn_batches()
    }

    /// Calls an `Fn` function once per element of `args`, the codec
    /// encoding of a sequence of arguments, in one typed pass; appends what
    /// [`call_each`](Self::call_each) appends.
    pub(crate) fn call_batch(&self, args: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<()> {
        self.require(Kind::Fn)?;
        self.inner.__serfn_call_batch(args, limits, out)
    }

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

    fn require(&self, wanted: Kind) -> Result<()> {
        let found = self.signature();
        if found.kind().can_act_as(wanted) {
            return Ok(());
        }
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
        DynFn { inner }
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
