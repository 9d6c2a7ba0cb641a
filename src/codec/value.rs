//! Plain values, without an envelope: how arguments and results travel,
//! and how a bytes-out call's result or panic is read back.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{format, Limits};
pub(crate) use crate::error::Panic;
use crate::error::{Error, Result};

/// Encodes a plain value, without envelope: how arguments and results travel.
///
/// # Errors
/// [`Error::Encode`] if the value's `Serialize` impl fails.
///
/// # Example
/// ```
/// let bytes = serfn::codec::encode_value(&(1.5f64, "x"))?;
/// let back: (f64, String) = serfn::codec::decode_value(&bytes, &serfn::Limits::default())?;
/// assert_eq!(back, (1.5, "x".to_string()));
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    format::encode_into(value, &mut out)?;
    Ok(out)
}

pub(crate) fn encode_value_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    format::encode_into(value, buf)
}

/// Appends the encoding of `values`, as [`encode_value_into`] of the `Vec`
/// writes it: in one pass for plain numbers (see `codec::plain`).
pub(crate) fn encode_seq_into<T: Serialize + 'static>(
    values: &Vec<T>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    // Chunks cross a pool's or fleet's sockets: Unix only.
    #[cfg(unix)]
    if super::plain::encode(values, buf)? {
        return Ok(());
    }
    format::encode_into(values, buf)
}

/// Decodes a `Vec<T>`, all of `bytes`, as [`decode_value`] does: in one
/// pass for plain numbers (see `codec::plain`).
pub(crate) fn decode_seq<T: DeserializeOwned + 'static>(
    bytes: &[u8],
    limits: &Limits,
) -> Result<Vec<T>> {
    let mut values = Vec::new();
    decode_seq_into(bytes, limits, &mut values)?;
    Ok(values)
}

/// [`decode_seq`] into `values`, empty: plain numbers go into its memory,
/// other values replace it.
pub(crate) fn decode_seq_into<T: DeserializeOwned + 'static>(
    bytes: &[u8],
    limits: &Limits,
    values: &mut Vec<T>,
) -> Result<()> {
    #[cfg(unix)]
    if let Some(decoded) = super::plain::decode_into::<T>(bytes, limits, usize::MAX, values) {
        limits.check_len(bytes.len() as u64)?;
        let used = decoded?;
        if used != bytes.len() {
            return Err(left_over(bytes.len() - used));
        }
        return Ok(());
    }
    *values = decode_value(bytes, limits)?;
    Ok(())
}

/// Decodes a plain value made by [`encode_value`], all of `bytes`, under `limits`.
///
/// # Errors
/// [`Error::TooLarge`], [`Error::TooDeep`] or [`Error::Decode`] for bad input.
///
/// # Example
/// ```
/// use serfn::{codec, Limits};
///
/// let bytes = codec::encode_value(&vec![1u32, 2, 3])?;
/// assert_eq!(codec::decode_value::<Vec<u32>>(&bytes, &Limits::default())?, [1, 2, 3]);
/// // All of the bytes, or an error.
/// let mut longer = bytes.clone();
/// longer.push(0);
/// assert!(matches!(codec::decode_value::<Vec<u32>>(&longer, &Limits::default()), Err(serfn::Error::Decode { .. })));
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8], limits: &Limits) -> Result<T> {
    limits.check_len(bytes.len() as u64)?;
    let (value, used) = format::decode_seed(bytes, limits, std::marker::PhantomData::<T>)?;
    if used != bytes.len() {
        return Err(left_over(bytes.len() - used));
    }
    Ok(value)
}

/// Decodes a value of a [fixed](crate::schema::Layout::is_fixed) layout,
/// all of `bytes`, without the guard: it could not allocate or nest past
/// the default limits.
// Always inlined: out of line, its frame and the copy of its result cost
// as much as decoding a small capture.
#[inline(always)]
pub(crate) fn decode_fixed<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (value, used) = format::decode_unguarded(bytes)?;
    if used != bytes.len() {
        return Err(left_over(bytes.len() - used));
    }
    Ok(value)
}

#[cold]
fn left_over(bytes: usize) -> Error {
    Error::decode(format!("{bytes} bytes left over after the value"))
}

/// Decodes a `T` from the start of `bytes` under `limits`, whatever follows
/// it: for the leading fields of a record too large to decode whole.
#[cfg(feature = "redis")]
pub(crate) fn decode_head<T: DeserializeOwned>(bytes: &[u8], limits: &Limits) -> Result<T> {
    let (value, _) = format::decode_seed(bytes, limits, std::marker::PhantomData::<T>)?;
    Ok(value)
}

/// Decodes a `T` from the start of `bytes` under the default limits (the
/// tighter outer ones inside a decode); returns how many bytes it used.
pub(crate) fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<usize> {
    let (_, used) = format::decode_seed(bytes, &Limits::default(), std::marker::PhantomData::<T>)?;
    Ok(used)
}

/// Appends a sequence's length prefix; the elements, encoded one by one
/// with [`encode_value_into`], follow it.
#[inline]
pub(crate) fn encode_len_into(len: usize, buf: &mut Vec<u8>) -> Result<()> {
    format::encode_len_into(len, buf)
}

/// Appends `value` as a sequence of one, the bytes [`encode_value_into`]
/// writes for a slice of it; a plain number (see `codec::plain`) is copied
/// in, without serde's sequence machinery.
pub(crate) fn encode_one_seq_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<()> {
    format::encode_len_into(1, buf)?;
    #[cfg(unix)]
    if super::plain::put(value, buf) {
        return Ok(());
    }
    encode_value_into(value, buf)
}

/// The bytes of the one element of a sequence of one, if `bytes` is one
/// (by its length prefix; the element itself is not checked).
#[inline]
pub(crate) fn one_seq_element(bytes: &[u8]) -> Option<&[u8]> {
    format::after_len_one(bytes)
}

/// Appends the encoding of `Ok::<R, Panic>(result)`: what a bytes-out call returns.
pub(crate) fn encode_ok_into<R: Serialize>(result: &R, buf: &mut Vec<u8>) -> Result<()> {
    format::encode_into(&Ok::<&R, Panic>(result), buf)
}

/// The encoding of `Err::<R, Panic>(panic)`; the same for every `R`.
pub(crate) fn encode_panic(panic: &Panic) -> Result<Vec<u8>> {
    encode_value(&Err::<(), &Panic>(panic))
}

/// Decodes the output of [`DynFn::call_bytes`](crate::DynFn::call_bytes):
/// the result, or the panic it carries as [`Error::Panicked`].
///
/// # Errors
/// [`Error::Panicked`] if the function panicked; as [`decode_value`] for bad input.
///
/// # Example
/// ```
/// use serfn::{codec, Error, Limits};
///
/// let half = serfn::closure!("half", [], move |x: u32| -> u32 {
///     assert!(x % 2 == 0, "{x} is odd");
///     x / 2
/// });
/// let half = half.into_dyn(); // a worker's view: bytes in, bytes out
/// let out = half.call_bytes(&codec::encode_value(&8u32)?)?;
/// assert_eq!(codec::decode_result::<u32>(&out, &Limits::default())?, 4);
/// let out = half.call_bytes(&codec::encode_value(&7u32)?)?;
/// match codec::decode_result::<u32>(&out, &Limits::default()) {
///     Err(Error::Panicked { message, .. }) => assert_eq!(message, "7 is odd"),
///     other => panic!("expected a panic, got {other:?}"),
/// }
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn decode_result<R: DeserializeOwned>(bytes: &[u8], limits: &Limits) -> Result<R> {
    decode_value::<std::result::Result<R, Panic>>(bytes, limits)?.map_err(Error::from)
}
