//! A worker's answers decoded: a chunk's bytes become its items' results.
//! Shared by maps, tasks and the Redis backend; depends on the codec only.

use serde::de::DeserializeOwned;

use super::singles::Answers;
use crate::codec;
use crate::error::{Error, Result};

/// How a task's payload becomes its result.
pub(crate) type Decode<R> = fn(Vec<u8>, &codec::Limits) -> Result<R>;

/// One chunk's results, yielded item by item without building a
/// `Vec<Result<R>>` first. The results up to the next panic are a run that
/// `next` yields with one compare an item (31 parent instructions an item
/// went here when each item looked at its index and the enum's kind).
pub(crate) struct ChunkResults<R> {
    /// Results left in the current run: yielded as they are.
    clean: usize,
    results: std::vec::IntoIter<R>,
    rest: Rest<R>,
}

/// What comes once the run is out.
enum Rest<R> {
    /// Nothing more than `results`.
    Done,
    /// The panics of a typed batch (or the errors of a group's items), by
    /// index; `at` is the index after the run.
    Panics {
        at: u32,
        panics: std::vec::IntoIter<(u32, Error)>,
    },
    /// An item-by-item batch.
    Each(std::vec::IntoIter<Result<R>>),
    /// The whole chunk failed: each item gets a copy of the error (boxed:
    /// a `ChunkResults` small enough to move without a `memcpy` call).
    Failed(Box<(Error, u32)>),
    /// A chunk of one item that returned: its result, with no `Vec` for it.
    One(Option<R>),
}

impl<R> Iterator for ChunkResults<R> {
    type Item = Result<R>;

    #[inline]
    fn next(&mut self) -> Option<Result<R>> {
        if self.clean > 0 {
            self.clean -= 1;
            return self.results.next().map(Ok);
        }
        self.next_slow()
    }
}

impl<R> ChunkResults<R> {
    /// The next result of the current run, or `None` where [`next`](Iterator::next)
    /// has more to look at: the hot path alone.
    #[inline(always)]
    pub(crate) fn next_in_run(&mut self) -> Option<R> {
        if self.clean == 0 {
            return None;
        }
        self.clean -= 1;
        self.results.next()
    }

    pub(crate) fn empty() -> Self {
        Self::with(Vec::new(), Rest::Done)
    }

    /// Each of `count` items fails with a copy of `error`.
    pub(crate) fn failed(error: Error, count: u32) -> Self {
        Self::with(Vec::new(), Rest::Failed(Box::new((error, count))))
    }

    fn with(results: Vec<R>, rest: Rest<R>) -> Self {
        let mut chunk = ChunkResults {
            clean: 0,
            results: results.into_iter(),
            rest,
        };
        chunk.start_run();
        chunk
    }

    /// Sets the run: the results before the next panic, or all that are left.
    fn start_run(&mut self) {
        let left = self.results.len();
        self.clean = match &mut self.rest {
            Rest::Done => left,
            Rest::Panics { at, panics } => {
                let run = match panics.as_slice().first() {
                    Some((index, _)) => index.saturating_sub(*at) as usize,
                    None => left,
                };
                let run = run.min(left);
                *at += run as u32;
                run
            }
            Rest::Each(_) | Rest::Failed(_) | Rest::One(_) => 0,
        };
    }

    #[inline(never)]
    fn next_slow(&mut self) -> Option<Result<R>> {
        let item = match &mut self.rest {
            Rest::Done => return None,
            Rest::Panics { at, panics } => {
                let index = *at;
                *at += 1;
                match panics.as_slice().first() {
                    Some((next, _)) if *next == index => panics.next().map(|(_, error)| Err(error)),
                    // An index out of order: the result in its place.
                    _ => self.results.next().map(Ok),
                }
            }
            Rest::Each(results) => return results.next(),
            Rest::Failed(failed) => {
                let (error, left) = &mut **failed;
                *left = left.checked_sub(1)?;
                return Some(Err(error.duplicate()));
            }
            Rest::One(one) => return one.take().map(Ok),
        };
        self.start_run();
        item
    }
}

/// Decodes a chunk's answer.
pub(crate) fn decode_chunk<R: DeserializeOwned + 'static>(
    count: u32,
    answer: Result<Vec<u8>>,
    limits: &codec::Limits,
    batched: bool,
) -> ChunkResults<R> {
    match answer {
        Ok(payload) => decode_chunk_bytes(count, &payload, limits, batched),
        Err(error) => ChunkResults::failed(error, count),
    }
}

/// [`decode_chunk`] of a payload the caller keeps.
pub(crate) fn decode_chunk_bytes<R: DeserializeOwned + 'static>(
    count: u32,
    payload: &[u8],
    limits: &codec::Limits,
    batched: bool,
) -> ChunkResults<R> {
    if count == 1 {
        return match codec::decode_one_result(payload, limits, batched) {
            Ok(Ok(one)) => ChunkResults::with(Vec::new(), Rest::One(Some(one))),
            Ok(Err(error)) | Err(error) => ChunkResults::failed(error, 1),
        };
    }
    let decoded = (|| {
        if batched {
            let (results, panics) = codec::decode_batch_results(payload, limits, count as usize)?;
            let panics = Rest::Panics {
                at: 0,
                panics: panics.into_iter(),
            };
            return Ok(ChunkResults::with(results, panics));
        }
        let results = codec::decode_results(payload, limits, count as usize)?;
        Ok(ChunkResults::with(
            Vec::new(),
            Rest::Each(results.into_iter()),
        ))
    })();
    decoded.unwrap_or_else(|error| ChunkResults::failed(error, count))
}

/// Decodes a group's answers, each item's on its own
/// ([`singles`](super::singles)): a bad answer fails its item only.
pub(crate) fn decode_each<R: DeserializeOwned + 'static>(
    answers: Answers,
    limits: &codec::Limits,
    batched: bool,
) -> ChunkResults<R> {
    let mut results = Vec::with_capacity(answers.count as usize - answers.errors.len());
    let mut failed = Vec::with_capacity(answers.errors.len());
    answers.for_each(|index, answer| {
        match answer.and_then(|payload| codec::decode_one_result(payload, limits, batched)) {
            Ok(Ok(result)) => results.push(result),
            Ok(Err(error)) | Err(error) => failed.push((index, error)),
        }
    });
    let failed = Rest::Panics {
        at: 0,
        panics: failed.into_iter(),
    };
    ChunkResults::with(results, failed)
}

/// Decodes a one-item payload into the function's result.
pub(crate) fn decode_one<R: DeserializeOwned + 'static>(
    payload: Vec<u8>,
    limits: &codec::Limits,
) -> Result<R> {
    first(decode_chunk(1, Ok(payload), limits, false))
}

/// [`decode_one`] for a function that runs batches in one typed pass.
pub(crate) fn decode_one_batched<R: DeserializeOwned + 'static>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn yielded(results: Vec<u32>, panic_at: &[u32]) -> Vec<Option<u32>> {
        let panics: Vec<(u32, Error)> = panic_at.iter().map(|&i| (i, Error::decode("p"))).collect();
        let rest = Rest::Panics {
            at: 0,
            panics: panics.into_iter(),
        };
        ChunkResults::with(results, rest).map(Result::ok).collect()
    }

    #[test]
    fn panics_land_at_their_indexes_between_runs() {
        assert_eq!(yielded(vec![1, 2], &[]), [Some(1), Some(2)]);
        assert_eq!(yielded(vec![1, 2], &[0]), [None, Some(1), Some(2)]);
        assert_eq!(yielded(vec![1, 2], &[1, 2]), [Some(1), None, None, Some(2)]);
        assert_eq!(yielded(vec![1, 2], &[2]), [Some(1), Some(2), None]);
        assert_eq!(yielded(vec![], &[0, 1]), [None, None]);
        let failed = ChunkResults::<u32>::failed(Error::decode("f"), 3);
        assert_eq!(failed.filter(Result::is_err).count(), 3);
    }
}
