//! postcard 1: the `postcard` feature, for builds without bincode.
//!
//! postcard reads every string and byte buffer borrowed from the input,
//! after checking its length against the input left, as the guard requires.
//! It drops the message of serde's custom errors: a failed encode is run
//! again through serde-reflection, whose errors keep it; serfn's own decode
//! errors are stashed (`codec::stash`) and survive, but a `Deserialize`
//! impl's own message becomes postcard's "Serde Deserialization Error".

use serde::de::DeserializeSeed;
use serde::Serialize;

use super::Guarded;
use crate::codec::{clear_stashed, stash, take_stashed, Limits};
use crate::error::{Error, Result};

/// The envelope's version byte in a postcard build: bit 6 marks postcard, so
/// that a bincode build refuses these bytes with `Error::Version` (and the
/// other way round) instead of misreading them.
pub(in crate::codec) const VERSION: u8 = 0x40 | 2;

/// The largest integer a varint (LEB128) writes as one byte.
pub(in crate::codec) const ONE_BYTE_MAX: u64 = 127;

/// Appends the encoding of `value` to `buf`.
pub(in crate::codec) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<()> {
    match postcard::to_io(value, buf) {
        Ok(_) => Ok(()),
        Err(postcard::Error::SerdeSerCustom) => Err(Error::encode(custom_message(value))),
        Err(error) => Err(Error::encode(error)),
    }
}

/// Writes the encoding of `value` to `writer`.
pub(in crate::codec) fn encode_to<T: Serialize + ?Sized, W: std::io::Write>(
    value: &T,
    writer: W,
) -> Result<()> {
    match postcard::to_io(value, writer) {
        Ok(_) => Ok(()),
        Err(postcard::Error::SerdeSerCustom) => Err(Error::encode(custom_message(value))),
        Err(error) => Err(Error::encode(error)),
    }
}

/// The message of the custom error `value`'s `Serialize` impl (or one
/// nested in it) raised, found by serializing it again to serde-reflection,
/// whose errors keep it; postcard's own when that finds none.
fn custom_message<T: Serialize + ?Sized>(value: &T) -> String {
    use serde_reflection::{Error as Traced, Samples, Tracer, TracerConfig};
    let mut tracer = Tracer::new(TracerConfig::default());
    match tracer.trace_value(&mut Samples::new(), value) {
        Err(Traced::Custom(message)) => message
            .strip_prefix("Failed to serialize value: \"")
            .and_then(|inner| inner.strip_suffix('"'))
            .map_or_else(|| message.clone(), str::to_owned),
        _ => postcard::Error::SerdeSerCustom.to_string(),
    }
}

/// Decodes with `seed` from the start of `bytes` under `limits`; returns the
/// value and how many bytes it used.
pub(in crate::codec) fn decode_seed<'de, S>(
    bytes: &'de [u8],
    limits: &Limits,
    seed: S,
) -> Result<(S::Value, usize)>
where
    S: DeserializeSeed<'de>,
{
    decode_with(bytes, Guarded::new(limits, seed))
}

/// Decodes a `T` from the start of `bytes`, unguarded: for the envelope's
/// header fields, whose lengths are checked against the input left.
pub(in crate::codec) fn decode_plain<'de, T: serde::Deserialize<'de>>(
    bytes: &'de [u8],
) -> Result<(T, usize)> {
    decode_with(bytes, std::marker::PhantomData::<T>)
}

/// Decodes with `seed` from the start of `bytes`; returns the value and how
/// many bytes it used.
fn decode_with<'de, S: DeserializeSeed<'de>>(
    bytes: &'de [u8],
    seed: S,
) -> Result<(S::Value, usize)> {
    clear_stashed();
    let mut deserializer = postcard::Deserializer::from_flavor(Input(bytes));
    match seed.deserialize(&mut deserializer) {
        Ok(value) => {
            let rest = deserializer.finalize().map_err(Error::decode)?;
            Ok((value, bytes.len() - rest.len()))
        }
        Err(error) => Err(take_stashed().unwrap_or_else(|| Error::decode(error))),
    }
}

/// The input, as postcard's own slice flavor but with no size hint: postcard
/// hides a sequence's length from the guard when it exceeds the input left,
/// and the guard refuses a forged length at once only when it sees it.
struct Input<'de>(&'de [u8]);

impl<'de> postcard::de_flavors::Flavor<'de> for Input<'de> {
    type Remainder = &'de [u8];
    type Source = &'de [u8];

    fn pop(&mut self) -> postcard::Result<u8> {
        let (&first, rest) = self.0.split_first().ok_or_else(|| ends_early(1))?;
        self.0 = rest;
        Ok(first)
    }

    fn try_take_n(&mut self, ct: usize) -> postcard::Result<&'de [u8]> {
        if ct > self.0.len() {
            return Err(ends_early(ct - self.0.len()));
        }
        let (taken, rest) = self.0.split_at(ct);
        self.0 = rest;
        Ok(taken)
    }

    fn finalize(self) -> postcard::Result<&'de [u8]> {
        Ok(self.0)
    }
}

/// The input ended `needed` bytes early: stashed, as its message would not
/// survive an erased-serde boundary (a function in a capture) in postcard's
/// error type.
fn ends_early(needed: usize) -> postcard::Error {
    stash(Error::decode(format!(
        "the input ends early ({needed} more bytes needed)"
    )))
}
