//! Sequences of plain numbers in one piece: [`Bulk`], or
//! `#[serde(with = "serfn::codec::bulk")]` on a `Vec` field.
//!
//! serde decodes a `Vec<f64>` element by element, each through the format
//! and the memory guard: about 30 instructions per element in a capture. A
//! `Bulk<f64>` is written as one byte string (its elements little endian,
//! 8 bytes each) and read back from it in one pass over the input, paid
//! against the memory bound once, by its length, before anything is
//! allocated. In bincode and postcard the bytes are a length prefix and
//! the elements as `Vec<f64>` writes them; only the prefix differs (it
//! counts bytes, not elements), so a capture that switches a field to
//! `Bulk` changes its layout and needs a new registration `version`.
//!
//! # Example
//! ```
//! use serfn::codec::Bulk;
//!
//! let weights: Bulk<f64> = vec![0.5; 1_000].into();
//! let dot = serfn::closure!("bulk::dot", [weights: Bulk<f64>], move |x: f64| -> f64 {
//!     weights.iter().map(|w| w * x).sum()
//! });
//! let bytes = serfn::to_bytes(&dot)?;
//! let back: serfn::SerFn<f64, f64> = serfn::from_bytes(&bytes)?;
//! assert_eq!(back.call(2.0), 1_000.0);
//! # Ok::<(), serfn::Error>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A number that [`Bulk`] stores: the integer and float primitives.
pub trait Plain: Copy + private::Sealed + 'static {
    /// Bytes of one element.
    const SIZE: usize;
    #[doc(hidden)]
    fn from_le(bytes: &[u8]) -> Self;
    /// Appends the element's `SIZE` bytes.
    #[doc(hidden)]
    fn put_le(self, out: &mut Vec<u8>);
    /// Runs `f` on the elements' bytes, little endian: in place on a
    /// little-endian target, where they are the bytes in memory.
    #[doc(hidden)]
    fn with_bytes<R>(values: &[Self], f: impl FnOnce(&[u8]) -> R) -> R;
}

mod private {
    pub trait Sealed {}
}

macro_rules! plain {
    ($($ty:ty),*) => {$(
        impl private::Sealed for $ty {}
        impl Plain for $ty {
            const SIZE: usize = std::mem::size_of::<$ty>();
            #[inline]
            fn from_le(bytes: &[u8]) -> Self {
                <$ty>::from_le_bytes(bytes.try_into().expect("chunks of SIZE bytes"))
            }
            #[inline]
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn with_bytes<R>(values: &[Self], f: impl FnOnce(&[u8]) -> R) -> R {
                if cfg!(target_endian = "little") {
                    // No copy: a 100 MiB capture's copy into fresh memory
                    // cost more than its transfer to a worker.
                    f(bytemuck::cast_slice(values))
                } else {
                    let mut bytes = Vec::with_capacity(values.len() * Self::SIZE);
                    for value in values {
                        value.put_le(&mut bytes);
                    }
                    f(&bytes)
                }
            }
        }
    )*};
}

plain!(u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);

impl private::Sealed for u8 {}
impl Plain for u8 {
    const SIZE: usize = 1;
    #[inline]
    fn from_le(bytes: &[u8]) -> Self {
        bytes[0]
    }
    #[inline]
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(self);
    }
    fn with_bytes<R>(values: &[Self], f: impl FnOnce(&[u8]) -> R) -> R {
        f(values)
    }
}

/// A `Vec` of plain numbers encoded as one byte string: decoded at the
/// speed of a copy, and paid against the memory bound once. Derefs to the
/// `Vec`; see the [module](self) for the format.
#[derive(Clone, Debug, Default, PartialEq, PartialOrd)]
pub struct Bulk<T>(pub Vec<T>);

impl<T> Bulk<T> {
    /// The `Vec` inside.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T> From<Vec<T>> for Bulk<T> {
    fn from(values: Vec<T>) -> Self {
        Bulk(values)
    }
}

impl<T> Deref for Bulk<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T> DerefMut for Bulk<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T: Plain> Serialize for Bulk<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, serializer)
    }
}

impl<'de, T: Plain> Deserialize<'de> for Bulk<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize(deserializer).map(Bulk)
    }
}

/// Writes `values` as [`Bulk`] does: for `#[serde(with = "serfn::codec::bulk")]`.
///
/// # Errors
/// The serializer's.
pub fn serialize<T: Plain, S: Serializer>(values: &[T], serializer: S) -> Result<S::Ok, S::Error> {
    T::with_bytes(values, |bytes| serializer.serialize_bytes(bytes))
}

/// Reads what [`serialize`] wrote: for `#[serde(with = "serfn::codec::bulk")]`.
///
/// # Errors
/// A byte string whose length is not a multiple of the element's size, or
/// the deserializer's (under serfn's limits: `Error::TooLarge` past the
/// memory bound, before anything is allocated).
pub fn deserialize<'de, T: Plain, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    deserializer.deserialize_bytes(BulkVisitor(PhantomData))
}

struct BulkVisitor<T>(PhantomData<T>);

impl<T: Plain> BulkVisitor<T> {
    fn decode<E: de::Error>(bytes: &[u8]) -> Result<Vec<T>, E> {
        if bytes.len() % T::SIZE != 0 {
            return Err(E::invalid_length(
                bytes.len(),
                &"a multiple of the element's size",
            ));
        }
        // One pass the compiler turns into wide loads: a copy's speed.
        Ok(bytes.chunks_exact(T::SIZE).map(T::from_le).collect())
    }
}

impl<'de, T: Plain> Visitor<'de> for BulkVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a byte string of {}-byte numbers", T::SIZE)
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<T>, E> {
        Self::decode(bytes)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, bytes: &'de [u8]) -> Result<Vec<T>, E> {
        Self::decode(bytes)
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<T>, E> {
        Self::decode(&bytes)
    }

    // Self-describing formats may give a byte string as a sequence.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut bytes = Vec::new();
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Self::decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::Bulk;
    use crate::codec::{decode_value, encode_value, Limits};
    use crate::error::Error;

    #[test]
    fn each_kind_of_number_comes_back_as_it_was() {
        let floats = Bulk(vec![0.5f64, -1.25, f64::MAX, f64::MIN_POSITIVE]);
        let back: Bulk<f64> =
            decode_value(&encode_value(&floats).unwrap(), &Limits::default()).unwrap();
        assert_eq!(back, floats);
        let bytes = Bulk((0..=255u8).collect::<Vec<_>>());
        let back: Bulk<u8> =
            decode_value(&encode_value(&bytes).unwrap(), &Limits::default()).unwrap();
        assert_eq!(back, bytes);
        let ints = Bulk(vec![i32::MIN, -1, 0, 7, i32::MAX]);
        let back: Bulk<i32> =
            decode_value(&encode_value(&ints).unwrap(), &Limits::default()).unwrap();
        assert_eq!(back, ints);
    }

    #[test]
    fn it_is_the_byte_string_of_the_elements() {
        let floats = Bulk(vec![1.0f64, 2.0]);
        let raw: Vec<u8> = floats.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(
            encode_value(&floats).unwrap(),
            encode_value(&serde_bytes_like(&raw)).unwrap()
        );
    }

    /// What serde writes for a byte string.
    fn serde_bytes_like(bytes: &[u8]) -> impl serde::Serialize + '_ {
        struct Raw<'a>(&'a [u8]);
        impl serde::Serialize for Raw<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Raw(bytes)
    }

    #[test]
    fn a_length_not_a_multiple_of_the_element_is_refused() {
        let bytes = encode_value(&serde_bytes_like(&[0; 12])).unwrap();
        let result = decode_value::<Bulk<f64>>(&bytes, &Limits::default());
        assert!(matches!(result, Err(Error::Decode { .. })), "{result:?}");
    }

    #[test]
    fn more_than_the_limits_is_too_large() {
        let floats = Bulk(vec![1.0f64; 1 << 20]);
        let bytes = encode_value(&floats).unwrap();
        let limits = Limits::new().max_bytes(4 << 20);
        let result = decode_value::<Bulk<f64>>(&bytes, &limits);
        assert!(matches!(result, Err(Error::TooLarge { .. })), "{result:?}");
        let roomy = Limits::new().max_bytes(bytes.len());
        assert_eq!(decode_value::<Bulk<f64>>(&bytes, &roomy).unwrap(), floats);
    }
}
