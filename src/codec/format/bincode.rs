//! bincode 2 with its `serde` support: the default format.

use serde::de::DeserializeSeed;
use serde::Serialize;

use super::Guarded;
use crate::codec::{clear_stashed, take_stashed, Limits};
use crate::error::{Error, Result};

/// The envelope's version byte in a bincode build.
pub(in crate::codec) const VERSION: u8 = 2;

fn config() -> bincode::config::Configuration {
    // Varint integers, little endian. No bincode limit: `guard` enforces ours,
    // which unlike bincode's can be set at run time.
    bincode::config::standard()
}

/// The largest integer a varint writes as one byte.
pub(in crate::codec) const ONE_BYTE_MAX: u64 = 250;

/// Appends the encoding of `value` to `buf`.
pub(in crate::codec) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<()> {
    bincode::serde::encode_into_writer(value, Io::new(buf), config()).map_err(Error::encode)
}

/// Writes the encoding of `value` to `writer`.
pub(in crate::codec) fn encode_to<T: Serialize + ?Sized, W: std::io::Write>(
    value: &T,
    writer: W,
) -> Result<()> {
    bincode::serde::encode_into_writer(value, Io::new(writer), config()).map_err(Error::encode)
}

/// bincode's `Writer` over an `io::Write`, its `write` always inlined:
/// bincode's own (`encode_into_std_write`) left a call per element of a
/// sequence, a third of the encoding of a 100 MiB `Vec<f64>`.
struct Io<W> {
    writer: W,
    /// Bytes written, for an error's position.
    written: usize,
}

impl<W> Io<W> {
    fn new(writer: W) -> Self {
        Io { writer, written: 0 }
    }
}

impl<W: std::io::Write> bincode::enc::write::Writer for Io<W> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        match self.writer.write_all(bytes) {
            Ok(()) => {
                self.written += bytes.len();
                Ok(())
            }
            Err(inner) => Err(bincode::error::EncodeError::Io {
                inner,
                index: self.written,
            }),
        }
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
    clear_stashed();
    bincode::serde::seed_decode_from_slice(Guarded::new(limits, seed), bytes, config())
        .map_err(|error| take_stashed().unwrap_or_else(|| Error::decode(describe(&error))))
}

/// Decodes a `T` from the start of `bytes`, unguarded: for the envelope's
/// header fields, whose lengths are checked against the input left.
pub(in crate::codec) fn decode_plain<'de, T: serde::Deserialize<'de>>(
    bytes: &'de [u8],
) -> Result<(T, usize)> {
    bincode::serde::borrow_decode_from_slice(bytes, config())
        .map_err(|error| Error::decode(describe(&error)))
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
