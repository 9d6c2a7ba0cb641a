//! The wire format: bincode 2 (the default `bincode` feature) or postcard 1
//! (the `postcard` feature; it wins when both are enabled, so that a
//! dependency's default features cannot override an explicit choice).
//!
//! Everything format-specific lives in this module: one file per format
//! beside it, each with `VERSION` (the envelope's version byte, distinct per
//! format), `encode_into` and `decode_seed`. serfn relies on properties any
//! compact serde format has (bincode and postcard both do): a tuple encodes
//! as the concatenation of its elements, a sequence as its length (as
//! [`encode_len_into`] writes it) followed by its elements, and a value's
//! encoding does not depend on the type parameters of the enum around it.
//! For the guard's memory bound, `deserialize_str` and `deserialize_bytes`
//! must check a length against the input left before allocating.

use serde::de::DeserializeSeed;
use serde::Serialize;

use super::{guard, Limits};
use crate::error::Result;

#[cfg(not(any(feature = "bincode", feature = "postcard")))]
compile_error!("serfn needs a wire format: enable the `bincode` (default) or `postcard` feature");

#[cfg(all(feature = "bincode", not(feature = "postcard")))]
mod bincode;
#[cfg(all(feature = "bincode", not(feature = "postcard")))]
use self::bincode as imp;

#[cfg(feature = "postcard")]
mod postcard;
#[cfg(feature = "postcard")]
use self::postcard as imp;

pub(super) use self::imp::VERSION;

/// Appends the encoding of `value` to `buf`.
#[inline]
pub(super) fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    imp::encode_into(value, buf)
}

/// Appends the length prefix of a sequence of `len` elements: a worker
/// writes it before the results it encodes one by one.
pub(super) fn encode_len_into(len: usize, buf: &mut Vec<u8>) -> Result<()> {
    encode_into(&(len as u64), buf)
}

/// Decodes with `seed` from the start of `bytes` under `limits`; returns the
/// value and how many bytes it used.
#[inline]
pub(super) fn decode_seed<'de, S>(
    bytes: &'de [u8],
    limits: &Limits,
    seed: S,
) -> Result<(S::Value, usize)>
where
    S: DeserializeSeed<'de>,
{
    imp::decode_seed(bytes, limits, seed)
}

/// `seed` behind the guard: what each format's `decode_seed` deserializes.
struct Guarded<'l, S> {
    limits: &'l Limits,
    seed: S,
}

impl<'l, S> Guarded<'l, S> {
    fn new(limits: &'l Limits, seed: S) -> Self {
        Guarded { limits, seed }
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Guarded<'_, S> {
    type Value = S::Value;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<S::Value, D::Error> {
        guard::deserialize_seed(deserializer, self.limits, self.seed)
    }
}
