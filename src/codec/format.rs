//! The wire format: bincode 2 with its `serde` support.
//!
//! Everything format-specific lives in this file. serfn relies on two
//! properties any compact serde format has (bincode and postcard both do):
//! a tuple encodes as the concatenation of its elements, a sequence as its
//! length (as [`encode_len_into`] writes it) followed by its elements, and a
//! value's encoding does not depend on the type parameters of the enum around it.

use serde::de::DeserializeSeed;
use serde::Serialize;

use super::{guard, take_stashed, Limits};
use crate::error::{Error, Result};

fn config() -> bincode::config::Configuration {
    // Varint integers, little endian. No bincode limit: `guard` enforces ours,
    // which unlike bincode's can be set at run time.
    bincode::config::standard()
}

/// Appends the encoding of `value` to `buf`.
pub(super) fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    bincode::serde::encode_into_std_write(value, buf, config())
        .map(drop)
        .map_err(Error::encode)
}

/// Appends the length prefix of a sequence of `len` elements: a worker
/// writes it before the results it encodes one by one.
pub(super) fn encode_len_into(len: usize, buf: &mut Vec<u8>) -> Result<()> {
    encode_into(&(len as u64), buf)
}

/// Decodes with `seed` from the start of `bytes` under `limits`; returns the
/// value and how many bytes it used.
pub(super) fn decode_seed<'de, S>(
    bytes: &'de [u8],
    limits: &Limits,
    seed: S,
) -> Result<(S::Value, usize)>
where
    S: DeserializeSeed<'de>,
{
    take_stashed();
    bincode::serde::seed_decode_from_slice(Guarded { limits, seed }, bytes, config())
        .map_err(|error| take_stashed().unwrap_or_else(|| Error::decode(describe(&error))))
}

/// What went wrong, in words: bincode's own `Display` is its `Debug`.
fn describe(error: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match error {
        E::UnexpectedEnd { additional } => {
            format!("the input ends early ({additional} more bytes needed)")
        }
        E::InvalidBooleanValue(value) => format!("{value} is not a boolean (0 or 1)"),
        E::InvalidCharEncoding(bytes) => format!("{bytes:?} is not a char"),
        E::UnexpectedVariant {
            type_name, found, ..
        } => format!("variant index {found} does not exist in `{type_name}`"),
        E::OutsideUsizeRange(value) => format!("{value} does not fit in a usize"),
        E::InvalidIntegerType { expected, found } => {
            format!("expected an integer of type {expected:?}, found {found:?}")
        }
        E::Utf8 { inner } => format!("a string is not UTF-8: {inner}"),
        E::OtherString(message) => message.clone(),
        E::Other(message) => (*message).to_owned(),
        other => format!("{other:?}"),
    }
}

struct Guarded<'l, S> {
    limits: &'l Limits,
    seed: S,
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
