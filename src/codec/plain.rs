//! A `Vec` of `f64`, `f32`, `u8` or `i8` encoded and decoded in one pass,
//! with the bytes serde writes for it: in both formats the sequence's length
//! prefix, then each element's little-endian bytes. What a pool's chunk of
//! such items and results is: no serde call and no guard charge per
//! element, the memory bound paid once per sequence, the wire unchanged.
//!
//! Other integers are varints in both formats, not plain bytes.

use std::any::{Any, TypeId};

use super::bulk::Plain;
use super::{format, Limits};
use crate::error::{Error, Result};

/// The encoded size of one `T` if `T`'s sequences take the one-pass path.
#[inline]
pub(crate) fn size_of<T: 'static>() -> Option<usize> {
    let id = TypeId::of::<T>();
    [
        (TypeId::of::<f64>(), 8),
        (TypeId::of::<f32>(), 4),
        (TypeId::of::<u8>(), 1),
        (TypeId::of::<i8>(), 1),
    ]
    .into_iter()
    .find_map(|(plain, size)| (plain == id).then_some(size))
}

/// Appends `value`'s bytes if it serializes as one plain number (an `f64`,
/// `f32`, `u8` or `i8`, or a reference to one): the bytes serde writes for
/// it in both formats. `false`, nothing written, for anything else. Needs
/// no `'static`: a map's borrowed items take this path too.
#[inline]
pub(crate) fn put<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> bool {
    value.serialize(Put(out)).is_ok()
}

/// Whether `value` serializes as one plain number, as [`put`] would find;
/// nothing is written.
#[inline]
pub(crate) fn is_plain<T: serde::Serialize + ?Sized>(value: &T) -> bool {
    value.serialize(Put(())).is_ok()
}

/// [`put`] over `into`, if `value`'s bytes are exactly as many; `false`,
/// `into` as it was or partly written, otherwise.
#[inline]
pub(crate) fn put_exact<T: serde::Serialize + ?Sized>(value: &T, into: &mut [u8]) -> bool {
    value.serialize(Put(into)).is_ok()
}

/// Where [`Put`] writes: appended to a `Vec`, over a slice of the size, or
/// nowhere (`()`, to ask only whether a value is plain).
trait Sink {
    fn take(self, bytes: &[u8]) -> bool;
}

impl Sink for () {
    #[inline]
    fn take(self, _: &[u8]) -> bool {
        true
    }
}

impl Sink for &mut Vec<u8> {
    #[inline]
    fn take(self, bytes: &[u8]) -> bool {
        self.extend_from_slice(bytes);
        true
    }
}

impl Sink for &mut [u8] {
    #[inline]
    fn take(self, bytes: &[u8]) -> bool {
        if self.len() != bytes.len() {
            return false;
        }
        self.copy_from_slice(bytes);
        true
    }
}

/// A serializer of one plain number; refuses anything else.
struct Put<S>(S);

impl<S: Sink> Put<S> {
    #[inline]
    fn take(self, bytes: &[u8]) -> std::result::Result<(), NotPlain> {
        if self.0.take(bytes) {
            Ok(())
        } else {
            Err(NotPlain)
        }
    }
}

/// What [`Put`] refuses.
#[derive(Debug)]
struct NotPlain;

impl std::fmt::Display for NotPlain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a plain number")
    }
}

impl std::error::Error for NotPlain {}

impl serde::ser::Error for NotPlain {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        NotPlain
    }
}

macro_rules! refuse {
    ($($name:ident($($arg:ty),*) -> $out:ty;)*) => {$(
        fn $name(self, $(_: $arg),*) -> std::result::Result<$out, NotPlain> {
            Err(NotPlain)
        }
    )*};
}

impl<S: Sink> serde::Serializer for Put<S> {
    type Ok = ();
    type Error = NotPlain;
    type SerializeSeq = serde::ser::Impossible<(), NotPlain>;
    type SerializeTuple = serde::ser::Impossible<(), NotPlain>;
    type SerializeTupleStruct = serde::ser::Impossible<(), NotPlain>;
    type SerializeTupleVariant = serde::ser::Impossible<(), NotPlain>;
    type SerializeMap = serde::ser::Impossible<(), NotPlain>;
    type SerializeStruct = serde::ser::Impossible<(), NotPlain>;
    type SerializeStructVariant = serde::ser::Impossible<(), NotPlain>;

    #[inline]
    fn serialize_f64(self, v: f64) -> std::result::Result<(), NotPlain> {
        self.take(&v.to_le_bytes())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> std::result::Result<(), NotPlain> {
        self.take(&v.to_le_bytes())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> std::result::Result<(), NotPlain> {
        self.take(&[v])
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> std::result::Result<(), NotPlain> {
        self.take(&v.to_le_bytes())
    }

    refuse! {
        serialize_bool(bool) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_i128(i128) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_u128(u128) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: serde::Serialize + ?Sized>(
        self,
        _: &T,
    ) -> std::result::Result<(), NotPlain> {
        Err(NotPlain)
    }
    fn serialize_newtype_struct<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> std::result::Result<(), NotPlain> {
        Err(NotPlain)
    }
    fn serialize_newtype_variant<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> std::result::Result<(), NotPlain> {
        Err(NotPlain)
    }
}

/// Appends `values` as serde encodes them if `T` is plain; `Ok(false)`,
/// nothing written, otherwise.
pub(crate) fn encode<T: serde::Serialize + 'static>(
    values: &[T],
    out: &mut Vec<u8>,
) -> Result<bool> {
    let Some(size) = size_of::<T>() else {
        return Ok(false);
    };
    format::encode_len_into(values.len(), out)?;
    let start = out.len();
    out.resize(start + values.len() * size, 0);
    for (value, into) in values.iter().zip(out[start..].chunks_exact_mut(size)) {
        // Always written: `T` is a plain number of `size` bytes.
        put_exact(value, into);
    }
    Ok(true)
}

/// Decodes a `Vec<T>` of at most `max_len` elements from the start of
/// `bytes` if `T` is plain, with the number of bytes it used; `None`
/// otherwise.
///
/// # Errors
/// [`Error::Decode`] for a bad or short input or more than `max_len`
/// elements, [`Error::TooLarge`] past the memory bound of `limits`: all
/// found before anything is allocated.
pub(crate) fn decode<T: 'static>(
    bytes: &[u8],
    limits: &Limits,
    max_len: usize,
) -> Option<Result<(Vec<T>, usize)>> {
    let mut values = Vec::new();
    decode_into(bytes, limits, max_len, &mut values).map(|used| used.map(|used| (values, used)))
}

/// [`decode`], appended to `into`: what a worker's batch does with the
/// `Vec` of its last one, whose memory is already there.
pub(crate) fn decode_into<T: 'static>(
    bytes: &[u8],
    limits: &Limits,
    max_len: usize,
    into: &mut Vec<T>,
) -> Option<Result<usize>> {
    // A `Vec`, not a slice: it is downcast to the `Vec<P>` it is, and grown.
    #[allow(clippy::ptr_arg)]
    fn typed<P: Plain, T: 'static>(
        bytes: &[u8],
        limits: &Limits,
        max_len: usize,
        into: &mut Vec<T>,
    ) -> Option<Result<usize>> {
        // `Some` only when `P` is `T`.
        let into = (into as &mut dyn Any).downcast_mut::<Vec<P>>()?;
        Some(decode_as::<P>(bytes, limits, max_len, into))
    }
    typed::<f64, T>(bytes, limits, max_len, into)
        .or_else(|| typed::<f32, T>(bytes, limits, max_len, into))
        .or_else(|| typed::<u8, T>(bytes, limits, max_len, into))
        .or_else(|| typed::<i8, T>(bytes, limits, max_len, into))
}

/// The one result of a batch of one call that returned, if `T` is plain
/// and `bytes` is exactly that: a sequence of one `T` and an empty one of
/// panics. `None` for anything else, which the caller decodes the long
/// way (and refuses there if it is bad).
#[inline]
pub(crate) fn decode_single<T: 'static>(bytes: &[u8]) -> Option<T> {
    // Lengths 1 and 0 are one byte each in both formats (tested).
    match bytes {
        [1, value @ .., 0] => decode_exact(value),
        _ => None,
    }
}

/// A plain `T` that is all of `bytes`, if `T` is plain and `bytes` are
/// its size: an argument of a batch of one, or the value inside
/// [`decode_single`]'s result. `None` for anything else, which the caller
/// decodes the long way.
#[inline]
pub(crate) fn decode_exact<T: 'static>(bytes: &[u8]) -> Option<T> {
    fn typed<P: Plain, T: 'static>(bytes: &[u8]) -> Option<T> {
        let mut slot: Option<T> = None;
        let typed = (&mut slot as &mut dyn Any).downcast_mut::<Option<P>>()?;
        if bytes.len() != P::SIZE {
            return None;
        }
        *typed = Some(P::from_le(bytes));
        slot
    }
    typed::<f64, T>(bytes)
        .or_else(|| typed::<f32, T>(bytes))
        .or_else(|| typed::<u8, T>(bytes))
        .or_else(|| typed::<i8, T>(bytes))
}

fn decode_as<P: Plain>(
    bytes: &[u8],
    limits: &Limits,
    max_len: usize,
    into: &mut Vec<P>,
) -> Result<usize> {
    // A sequence's length is written as a `u64` is, in both formats.
    let (len, prefix) = format::decode_unguarded::<u64>(bytes)?;
    if len > max_len as u64 {
        // Only answers are bounded: `max_len` is the items they answer.
        return Err(Error::decode(format!(
            "a worker answered {max_len} items with more results ({len})"
        )));
    }
    let body = &bytes[prefix..];
    let size = usize::try_from(len)
        .ok()
        .and_then(|len| len.checked_mul(P::SIZE))
        .filter(|&size| size <= body.len())
        .ok_or_else(|| {
            Error::decode(format!(
                "a sequence of {len} {}-byte elements in {} bytes",
                P::SIZE,
                body.len()
            ))
        })?;
    if size > limits.budget() {
        return Err(Error::TooLarge {
            len: size as u64,
            limit: limits.budget(),
        });
    }
    // One pass the compiler turns into wide loads: a copy's speed.
    into.extend(body[..size].chunks_exact(P::SIZE).map(P::from_le));
    Ok(prefix + size)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::{decode_value, encode_value};

    fn same_as_serde<T>(values: Vec<T>)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + 'static,
    {
        let serde_bytes = encode_value(&values).unwrap();
        let mut ours = Vec::new();
        assert!(encode(&values, &mut ours).unwrap());
        assert_eq!(ours, serde_bytes);
        let (back, used) = decode::<T>(&ours, &Limits::default(), usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(used, ours.len());
        assert_eq!(back, values);
        assert_eq!(
            decode_value::<Vec<T>>(&ours, &Limits::default()).unwrap(),
            values
        );
    }

    proptest! {
        #[test]
        fn plain_sequences_are_serdes_bytes(
            floats in prop::collection::vec(any::<f64>().prop_filter("NaN", |x| !x.is_nan()), 0..300),
            singles in prop::collection::vec(any::<f32>().prop_filter("NaN", |x| !x.is_nan()), 0..300),
            bytes in prop::collection::vec(any::<u8>(), 0..300),
            signed in prop::collection::vec(any::<i8>(), 0..300),
        ) {
            same_as_serde(floats);
            same_as_serde(singles);
            same_as_serde(bytes);
            same_as_serde(signed);
        }

        #[test]
        fn any_input_is_a_value_or_a_typed_error(input in prop::collection::vec(any::<u8>(), 0..64)) {
            let limits = Limits::default();
            match decode::<f64>(&input, &limits, 16).unwrap() {
                Ok((values, used)) => {
                    prop_assert!(values.len() <= 16 && used <= input.len());
                    prop_assert_eq!(decode_value::<Vec<f64>>(&input[..used], &limits).unwrap().len(), values.len());
                }
                Err(error) => prop_assert!(matches!(error, Error::Decode { .. }), "{error:?}"),
            }
        }
    }

    #[test]
    fn a_single_result_is_read_in_place() {
        // What a worker writes for a batch of one call that returned.
        let mut answer = Vec::new();
        assert!(encode(&[2.5f64], &mut answer).unwrap());
        answer.extend(encode_value(&Vec::<(u32, String)>::new()).unwrap());
        assert_eq!(decode_single::<f64>(&answer), Some(2.5));
        assert_eq!(decode_single::<f32>(&answer), None);
        assert_eq!(decode_single::<u64>(&answer), None);
        assert_eq!(decode_single::<f64>(&answer[..answer.len() - 1]), None);
        let mut byte = Vec::new();
        assert!(encode(&[7u8], &mut byte).unwrap());
        byte.push(0);
        assert_eq!(decode_single::<u8>(&byte), Some(7));
    }

    #[test]
    fn other_types_take_the_serde_path() {
        assert_eq!(size_of::<u64>(), None);
        assert_eq!(size_of::<bool>(), None);
        assert!(!encode(&[1u64, 2], &mut Vec::new()).unwrap());
        assert!(decode::<u32>(&[0], &Limits::default(), 1).is_none());
        assert!(is_plain(&1.5f64) && is_plain(&&2u8) && is_plain(&-1i8));
        assert!(!is_plain(&7u64) && !is_plain("x") && !is_plain(&Some(1.0f64)));
        assert!(!put_exact(&7u64, &mut [0; 8]));
        assert!(!put_exact(&7.0f32, &mut [0; 8]));
    }

    #[test]
    fn short_long_and_oversized_sequences_are_typed_errors() {
        let bytes = encode_value(&vec![1.5f64; 100]).unwrap();
        let limits = Limits::default();
        let short = decode::<f64>(&bytes[..bytes.len() - 1], &limits, 100).unwrap();
        assert!(matches!(short, Err(Error::Decode { .. })), "{short:?}");
        let long = decode::<f64>(&bytes, &limits, 99).unwrap();
        assert!(matches!(long, Err(Error::Decode { .. })), "{long:?}");
        let tight = Limits {
            max_bytes: 100,
            min_budget: 0,
            ..Limits::default()
        };
        let over = decode::<f64>(&bytes, &tight, 100).unwrap();
        assert!(matches!(over, Err(Error::TooLarge { .. })), "{over:?}");
        // A forged length far past the input allocates nothing.
        let mut forged = Vec::new();
        format::encode_len_into(usize::MAX >> 4, &mut forged).unwrap();
        let forged = decode::<f64>(&forged, &limits, usize::MAX).unwrap();
        assert!(matches!(forged, Err(Error::Decode { .. })), "{forged:?}");
    }
}
