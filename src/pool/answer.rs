//! A worker's answers decoded: a chunk's bytes become its items' results.
//! Shared by maps, tasks and the Redis backend; depends on the codec only.

use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::{Error, Result};

/// How a task's payload becomes its result.
pub(crate) type Decode<R> = fn(Vec<u8>, &codec::Limits) -> Result<R>;

/// One chunk's results, yielded item by item without building a
/// `Vec<Result<R>>` first.
pub(crate) enum ChunkResults<R> {
    /// A typed batch: the results of the calls that returned and the panics by index.
    Batched {
        at: u32,
        results: std::vec::IntoIter<R>,
        panics: std::vec::IntoIter<(u32, Error)>,
        /// The index of the next panic (`u32::MAX`: none left): one compare
        /// an item, where a `Peekable` cost 34 instructions an item.
        next_panic: u32,
    },
    /// An item-by-item batch.
    Each(std::vec::IntoIter<Result<R>>),
    /// The whole chunk failed: each item gets a copy of the error.
    Failed { error: Error, left: u32 },
}

impl<R> Iterator for ChunkResults<R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        match self {
            ChunkResults::Batched {
                at,
                results,
                panics,
                next_panic,
            } => {
                let index = *at;
                *at += 1;
                if index != *next_panic {
                    return results.next().map(Ok);
                }
                let (_, error) = panics.next()?;
                *next_panic = first_index(panics.as_slice());
                Some(Err(error))
            }
            ChunkResults::Each(results) => results.next(),
            ChunkResults::Failed { error, left } => {
                *left = left.checked_sub(1)?;
                Some(Err(error.duplicate()))
            }
        }
    }
}

impl<R> ChunkResults<R> {
    pub(crate) fn empty() -> Self {
        ChunkResults::Each(Vec::new().into_iter())
    }
}

/// The index of the first of `panics`, or `u32::MAX` for none (no item has
/// that index: a chunk's count is a `u32`, so its indexes stay below it).
fn first_index(panics: &[(u32, Error)]) -> u32 {
    panics.first().map_or(u32::MAX, |(at, _)| *at)
}

/// Decodes a chunk's answer.
pub(crate) fn decode_chunk<R: DeserializeOwned>(
    count: u32,
    answer: Result<Vec<u8>>,
    limits: &codec::Limits,
    batched: bool,
) -> ChunkResults<R> {
    match answer {
        Ok(payload) => decode_chunk_bytes(count, &payload, limits, batched),
        Err(error) => ChunkResults::Failed { error, left: count },
    }
}

/// [`decode_chunk`] of a payload the caller keeps.
pub(crate) fn decode_chunk_bytes<R: DeserializeOwned>(
    count: u32,
    payload: &[u8],
    limits: &codec::Limits,
    batched: bool,
) -> ChunkResults<R> {
    let decoded = (|| {
        if batched {
            let (results, panics) = codec::decode_batch_results(payload, limits, count as usize)?;
            return Ok(ChunkResults::Batched {
                at: 0,
                results: results.into_iter(),
                next_panic: first_index(&panics),
                panics: panics.into_iter(),
            });
        }
        let results = codec::decode_results(payload, limits, count as usize)?;
        Ok(ChunkResults::Each(results.into_iter()))
    })();
    decoded.unwrap_or_else(|error| ChunkResults::Failed { error, left: count })
}

/// Decodes a one-item payload into the function's result.
pub(crate) fn decode_one<R: DeserializeOwned>(
    payload: Vec<u8>,
    limits: &codec::Limits,
) -> Result<R> {
    first(decode_chunk(1, Ok(payload), limits, false))
}

/// [`decode_one`] for a function that runs batches in one typed pass.
pub(crate) fn decode_one_batched<R: DeserializeOwned>(
    payload: Vec<u8>,
    limits: &codec::Limits,
) -> Result<R> {
    first(decode_chunk(1, Ok(payload), limits, true))
}

fn first<R>(mut results: impl Iterator<Item = Result<R>>) -> Result<R> {
    // `decode_chunk` checks the count: one item, one result.
    results
        .next()
        .unwrap_or_else(|| Err(Error::decode("a worker answered a call with no result")))
}
