//! Functions that are not `Fn` on the fleet: a [`SerFnOnce`] called once,
//! and a [`SerFnMut`] folded sequentially, its state travelling with each
//! task.
//!
//! A worker answers a task by the kind of the function it runs: an `Fn` or
//! an `FnOnce` with its outputs; an `FnMut` with its outputs, then the
//! state it ends in (see [`split_state`]).

use std::collections::VecDeque;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::job::{job_id, Job, MAX_TASK_BYTES};
use super::RedisExecutor;
use crate::error::{Error, Result};
use crate::handle::{SerFnMut, SerFnOnce};
use crate::plumbing::Kind;
use crate::pool::answer::{decode_chunk_bytes, decode_one};
use crate::pool::map::items_block;
use crate::pool::MapItems;

/// Items in one task of a fold, unless the executor's `chunk_size` says.
const FOLD_CHUNK: usize = 4096;

/// An `FnMut` task's answer: the length of its outputs (8 bytes, little
/// endian), its outputs, then its state's encoding.
pub(crate) fn join_state(outputs: &[u8], state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + outputs.len() + state.len());
    out.extend_from_slice(&(outputs.len() as u64).to_le_bytes());
    out.extend_from_slice(outputs);
    out.extend_from_slice(state);
    out
}

/// [`join_state`] undone: the outputs and the state.
fn split_state(answer: &[u8]) -> Result<(&[u8], &[u8])> {
    let bad = || Error::decode("a fold's answer is cut short");
    let (len, rest) = answer.split_first_chunk::<8>().ok_or_else(bad)?;
    let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| bad())?;
    if len > rest.len() {
        return Err(bad());
    }
    Ok(rest.split_at(len))
}

/// Sends one task of `count` items to a new job of the function `envelope`,
/// and waits for its answer.
fn run_task(
    executor: &RedisExecutor,
    envelope: Vec<u8>,
    name: &'static str,
    (block, count): (Vec<u8>, u32),
) -> Result<Vec<u8>> {
    Job::start_encoded(executor.shared(), envelope, name, false, job_id())?
        .run_one(block, count, None)?
        .output
}

/// Calls `f(args)` on one worker.
pub(crate) fn call_once<A, R>(executor: &RedisExecutor, f: SerFnOnce<A, R>, args: A) -> Result<R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let limits = executor.shared().config.limits;
    let limit = limits.get_max_bytes();
    let kind = f.signature().kind();
    let block = items_block(
        &mut std::iter::once(args),
        &mut VecDeque::new(),
        1,
        limit,
        limit,
        false,
    )?;
    let answer = run_task(executor, f.to_bytes()?, f.name(), block)?;
    let outputs = match kind {
        Kind::FnMut => split_state(&answer)?.0,
        _ => &answer[..],
    };
    decode_one(outputs.to_vec(), &limits)
}

/// Folds `items` into `f`'s state, one task at a time.
pub(crate) fn fold<A, R, I, How>(
    executor: &RedisExecutor,
    f: &SerFnMut<A, R>,
    items: I,
) -> Result<Vec<SerFnMut<A, R>>>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: MapItems<A, How>,
{
    let config = &executor.shared().config;
    let (limits, limit) = (config.limits, config.limits.get_max_bytes());
    let chunk = config.chunk_size.unwrap_or(FOLD_CHUNK);
    // An `Fn` given as a `SerFnMut` has no state to carry: it stays as it is.
    let carries_state = f.signature().kind() == Kind::FnMut;
    let mut state = f.to_bytes()?;
    let (mut items, mut held) = (items.into_items(), VecDeque::new());
    loop {
        let target = MAX_TASK_BYTES.min(limit);
        let block = items_block(&mut items, &mut held, chunk, target, limit, false)?;
        let count = block.1;
        if count == 0 {
            break;
        }
        let answer = run_task(executor, state.clone(), f.name(), block)?;
        let (outputs, next) = match carries_state {
            true => split_state(&answer)?,
            false => (&answer[..], &state[..]),
        };
        if let Some(Err(error)) =
            decode_chunk_bytes::<R>(count, outputs, &limits, false).find(Result::is_err)
        {
            return Err(error);
        }
        state = next.to_vec();
    }
    Ok(vec![limits.from_bytes(&state)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fold_answer_splits_back() {
        let joined = join_state(b"out", b"state");
        assert_eq!(split_state(&joined).unwrap(), (&b"out"[..], &b"state"[..]));
        assert!(split_state(&joined[..5]).is_err());
        let mut lying = joined.clone();
        lying[0] = 200;
        assert!(split_state(&lying).is_err());
    }
}
