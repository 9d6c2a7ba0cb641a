//! A pool's answers for a chunk, decoded against the number of items sent:
//! a sequence never grows past the count it answers, whatever its length
//! prefix claims, so a forged answer costs at most one element more.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};

use super::{format, plain, stash, Limits, Panic};
use crate::error::{Error, Result};

/// Decodes a sequence of outputs of [`DynFn::call_bytes`](crate::DynFn::call_bytes)
/// (what a pool's worker sends back for a chunk of `count` items) in one pass.
///
/// # Errors
/// As [`decode_value`](super::decode_value) for bad input, and
/// [`Error::Decode`] for any other number of results, found before the
/// one past `count` is decoded; a panic is the item's own error.
pub(crate) fn decode_results<R: DeserializeOwned>(
    bytes: &[u8],
    limits: &Limits,
    count: usize,
) -> Result<Vec<Result<R>>> {
    let seed = Counted::<std::result::Result<R, Panic>>::new(count, true);
    let outputs = decode_all(bytes, limits, seed)?;
    Ok(outputs
        .into_iter()
        .map(|output| output.map_err(Error::from))
        .collect())
}

/// A typed batch's results: those of the calls that returned, in order, and
/// the panics by the index of their call.
pub(crate) type BatchResults<R> = (Vec<R>, Vec<(u32, Error)>);

/// Decodes what a typed batch call (`SerializableFn::__serfn_call_batch`)
/// appends, for `count` calls: the results of the calls that returned, in
/// order, and the panics by index, increasing. One pass with no enum per
/// item: a chunk of plain results decodes as fast as a plain `Vec<R>`.
///
/// # Errors
/// As [`decode_value`](super::decode_value) for bad input, and
/// [`Error::Decode`] if the parts do not add up to `count` calls (found
/// before more than `count` parts are decoded).
pub(crate) fn decode_batch_results<R: DeserializeOwned + 'static>(
    bytes: &[u8],
    limits: &Limits,
    count: usize,
) -> Result<BatchResults<R>> {
    let (results, panics) = match plain::decode::<R>(bytes, limits, count) {
        // Plain results in one pass, then the panics as below.
        Some(results) => {
            limits.check_len(bytes.len() as u64)?;
            let (results, used) = results?;
            let left = count - results.len();
            let panics = decode_all(
                &bytes[used..],
                limits,
                Counted::<(u32, Panic)>::new(left, false),
            )?;
            (results, panics)
        }
        None => decode_all(bytes, limits, Batch::<R>(count, PhantomData))?,
    };
    let ordered = panics.windows(2).all(|w| w[0].0 < w[1].0);
    let in_range = panics.last().is_none_or(|(at, _)| (*at as usize) < count);
    if results.len() + panics.len() != count || !ordered || !in_range {
        return Err(Error::decode(format!(
            "a batch of {count} calls answered with {} results and {} panics",
            results.len(),
            panics.len()
        )));
    }
    let panics = panics
        .into_iter()
        .map(|(at, panic)| (at, Error::from(panic)))
        .collect();
    Ok((results, panics))
}

/// The answer to one item, as [`decode_results`] or [`decode_batch_results`]
/// of a count of 1 would give it, without a `Vec` for it: what each answer
/// is at one item per message.
///
/// # Errors
/// As those: bad input, or other than one result.
// Inlined, the rest apart: a plain result, as most are, costs no call.
#[inline]
pub(crate) fn decode_one_result<R: DeserializeOwned + 'static>(
    bytes: &[u8],
    limits: &Limits,
    batched: bool,
) -> Result<Result<R>> {
    if batched {
        if let Some(result) = plain::decode_single::<R>(bytes) {
            return Ok(Ok(result));
        }
    }
    decode_one_result_slow(bytes, limits, batched)
}

#[inline(never)]
fn decode_one_result_slow<R: DeserializeOwned + 'static>(
    bytes: &[u8],
    limits: &Limits,
    batched: bool,
) -> Result<Result<R>> {
    let wrong = |results: usize| {
        Error::decode(format!("a worker answered one item with {results} results"))
    };
    if !batched {
        let seed = AtMostOne::<std::result::Result<R, Panic>>(PhantomData);
        return match decode_all(bytes, limits, seed)? {
            Some(output) => Ok(output.map_err(Error::from)),
            None => Err(wrong(0)),
        };
    }
    match decode_all(bytes, limits, BatchOne::<R>(PhantomData))? {
        (Some(result), None) => Ok(Ok(result)),
        (None, Some((0, panic))) => Ok(Err(Error::from(panic))),
        (result, panic) => Err(wrong(
            usize::from(result.is_some()) + usize::from(panic.is_some()),
        )),
    }
}

fn decode_all<'de, S: DeserializeSeed<'de>>(
    bytes: &'de [u8],
    limits: &Limits,
    seed: S,
) -> Result<S::Value> {
    limits.check_len(bytes.len() as u64)?;
    let (value, used) = format::decode_seed(bytes, limits, seed)?;
    if used != bytes.len() {
        return Err(Error::decode(format!(
            "{} bytes left over after the results",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// A `Vec<T>` of at most `max` elements (exactly `max` with `exact`).
struct Counted<T> {
    max: usize,
    exact: bool,
    types: PhantomData<fn() -> T>,
}

impl<T> Counted<T> {
    fn new(max: usize, exact: bool) -> Self {
        Counted {
            max,
            exact,
            types: PhantomData,
        }
    }
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Counted<T> {
    type Value = Vec<T>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Counted<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of at most {} results", self.max)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // Our own count, not the input's claim, sizes the allocation.
        let cap = self.max.min((1 << 20) / size_of::<T>().max(1));
        let mut out = Vec::with_capacity(cap);
        while let Some(element) = seq.next_element()? {
            if out.len() == self.max {
                return Err(stash(Error::decode(format!(
                    "a worker answered {} items with more results",
                    self.max
                ))));
            }
            out.push(element);
        }
        if self.exact && out.len() != self.max {
            return Err(stash(Error::decode(format!(
                "a worker answered {} items with {} results",
                self.max,
                out.len()
            ))));
        }
        Ok(out)
    }
}

/// `(results, panics)` of a typed batch of `.0` calls, each part bounded.
struct Batch<R>(usize, PhantomData<fn() -> R>);

type RawBatch<R> = (Vec<R>, Vec<(u32, Panic)>);

impl<'de, R: DeserializeOwned> DeserializeSeed<'de> for Batch<R> {
    type Value = RawBatch<R>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<RawBatch<R>, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de, R: DeserializeOwned> Visitor<'de> for Batch<R> {
    type Value = RawBatch<R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the results and panics of {} calls", self.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawBatch<R>, A::Error> {
        // Stashed: postcard drops a custom error's message.
        let missing = || stash(Error::decode("a batch answer ends early"));
        let results = seq
            .next_element_seed(Counted::<R>::new(self.0, false))?
            .ok_or_else(missing)?;
        let left = self.0 - results.len();
        let panics = seq
            .next_element_seed(Counted::<(u32, Panic)>::new(left, false))?
            .ok_or_else(missing)?;
        Ok((results, panics))
    }
}

/// A sequence of at most one `T`.
struct AtMostOne<T>(PhantomData<fn() -> T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for AtMostOne<T> {
    type Value = Option<T>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for AtMostOne<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of at most one result")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        let one = seq.next_element()?;
        if one.is_some() && seq.next_element::<T>()?.is_some() {
            return Err(stash(Error::decode(
                "a worker answered one item with more results",
            )));
        }
        Ok(one)
    }
}

/// `(results, panics)` of a typed batch of one call.
struct BatchOne<R>(PhantomData<fn() -> R>);

type RawOne<R> = (Option<R>, Option<(u32, Panic)>);

impl<'de, R: DeserializeOwned> DeserializeSeed<'de> for BatchOne<R> {
    type Value = RawOne<R>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<RawOne<R>, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de, R: DeserializeOwned> Visitor<'de> for BatchOne<R> {
    type Value = RawOne<R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the result or panic of one call")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawOne<R>, A::Error> {
        let missing = || stash(Error::decode("a batch answer ends early"));
        let result = seq
            .next_element_seed(AtMostOne::<R>(PhantomData))?
            .ok_or_else(missing)?;
        let panic = seq
            .next_element_seed(AtMostOne::<(u32, Panic)>(PhantomData))?
            .ok_or_else(missing)?;
        Ok((result, panic))
    }
}
