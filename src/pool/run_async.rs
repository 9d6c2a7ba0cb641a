//! A worker's async chunks: each item's future on the worker's runtime, up
//! to the chunk's concurrency at once, each within its timeout, a panic
//! caught for its item alone. The answer is what a sync chunk's is, in item
//! order, so that the pool decodes both alike.
//!
//! The runtime (tokio's current-thread one, started at the first async
//! chunk) is the `tokio` feature's; without it an async chunk fails with a
//! typed error and the worker goes on.

use crate::codec::{self, Limits, Panic};
use crate::error::{Error, Result};
use crate::handle::DynFn;

/// An async chunk's settings, as its frame carries them.
#[cfg_attr(
    not(feature = "tokio"),
    allow(dead_code, reason = "read by the runtime only")
)]
pub(crate) struct Settings {
    /// Each item's; `None`: no timeout.
    pub(crate) timeout: Option<std::time::Duration>,
    /// Items run at once, at least 1.
    pub(crate) concurrency: usize,
}

/// How long a chunk of `count` items may run at `concurrency` at once when
/// each item has `timeout`: a round per `concurrency` items, and a grace for
/// the worker itself. Past it the worker is stuck (a body that never
/// yields), not an item late: each item's own timeout answers first.
pub(crate) fn chunk_bound(
    timeout: std::time::Duration,
    count: usize,
    concurrency: usize,
) -> std::time::Duration {
    let rounds = count.div_ceil(concurrency.max(1)).max(1);
    timeout
        .saturating_mul(u32::try_from(rounds).unwrap_or(u32::MAX))
        .saturating_add(std::time::Duration::from_secs(1))
}

/// The worker's runtime, started when first needed.
#[derive(Default)]
pub(crate) struct Runner {
    #[cfg(feature = "tokio")]
    runtime: Option<tokio::runtime::Runtime>,
}

/// How one item ended.
#[cfg_attr(
    not(feature = "tokio"),
    allow(dead_code, reason = "made by the runtime only")
)]
enum Outcome {
    /// The encoding of its result.
    Value(Vec<u8>),
    /// A panic, or a timeout in a panic's place (see `Panic::timeout`).
    Panic(Panic),
}

impl Runner {
    /// Runs `f` on each of `items`, appending the encoded sequence of
    /// `Result<R, Panic>` a sync chunk's answer is.
    ///
    /// # Errors
    /// The chunk's, as a whole: `f` is not async, an argument does not
    /// decode, a result does not encode, or this build has no runtime.
    pub(crate) fn run(
        &mut self,
        f: &DynFn,
        items: &[&[u8]],
        limits: &Limits,
        settings: &Settings,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let outcomes = self.outcomes(f, items, limits, settings)?;
        codec::encode_len_into(outcomes.len(), out)?;
        // `Ok(value)` is the variant's tag, then the value: the tag of `Ok(())`.
        let ok = codec::encode_value(&Ok::<(), ()>(()))?;
        for outcome in outcomes {
            match outcome {
                Outcome::Value(value) => {
                    out.extend_from_slice(&ok);
                    out.extend_from_slice(&value);
                }
                Outcome::Panic(panic) => out.extend_from_slice(&codec::encode_panic(&panic)?),
            }
        }
        Ok(())
    }

    #[cfg(not(feature = "tokio"))]
    fn outcomes(
        &mut self,
        f: &DynFn,
        _: &[&[u8]],
        _: &Limits,
        _: &Settings,
    ) -> Result<Vec<Outcome>> {
        Err(Error::SignatureMismatch {
            name: f.name().into(),
            expected: "a sync function: this worker was built without serfn's `tokio` feature, \
                       which runs async functions"
                .into(),
            found: f.signature().to_string(),
        })
    }

    #[cfg(feature = "tokio")]
    fn outcomes(
        &mut self,
        f: &DynFn,
        items: &[&[u8]],
        limits: &Limits,
        settings: &Settings,
    ) -> Result<Vec<Outcome>> {
        let runtime = match &mut self.runtime {
            Some(runtime) => runtime,
            None => self.runtime.insert(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::io)?,
            ),
        };
        runtime.block_on(run_all(f, items, limits, settings))
    }
}

/// Runs the items, at most `settings.concurrency` at once.
#[cfg(feature = "tokio")]
async fn run_all(
    f: &DynFn,
    items: &[&[u8]],
    limits: &Limits,
    settings: &Settings,
) -> Result<Vec<Outcome>> {
    let name = f.name();
    let mut outcomes: Vec<Option<Outcome>> = items.iter().map(|_| None).collect();
    // Dropped on an early return: the items still running are dropped too.
    let mut running = tokio::task::JoinSet::new();
    let mut next = 0;
    loop {
        while running.len() < settings.concurrency && next < items.len() {
            let index = next;
            next += 1;
            // The argument is decoded now; the body runs when polled.
            match crate::error::catch(name, || f.start_async(items[index], limits)) {
                Ok(started) => {
                    let item = run_item(started?, settings.timeout, name);
                    running.spawn(async move { (index, item.await) });
                }
                Err(panic) => outcomes[index] = Some(Outcome::Panic(panic)),
            }
        }
        match running.join_next().await {
            Some(Ok((index, outcome))) => outcomes[index] = Some(outcome?),
            // Panics are caught inside, and nothing aborts the items.
            Some(Err(error)) => return Err(Error::io(std::io::Error::other(error))),
            None => break,
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every item ran"))
        .collect())
}

/// One item's future, within its timeout, its panic caught.
#[cfg(feature = "tokio")]
async fn run_item(
    started: crate::erased::AsyncOutput,
    timeout: Option<std::time::Duration>,
    name: &'static str,
) -> Result<Outcome> {
    let caught = CatchUnwind {
        future: started,
        name,
    };
    let ended = match timeout {
        Some(timeout) => match tokio::time::timeout(timeout, caught).await {
            Ok(ended) => ended,
            // Dropped: the item's future is gone, the worker goes on.
            Err(_) => return Ok(Outcome::Panic(Panic::timeout(name, timeout))),
        },
        None => caught.await,
    };
    match ended {
        Ok(result) => result.map(Outcome::Value),
        Err(panic) => Ok(Outcome::Panic(panic)),
    }
}

/// A future whose panics end it with the [`Panic`], noted by the worker's
/// hook on this thread, instead of unwinding through the runtime.
#[cfg(feature = "tokio")]
struct CatchUnwind {
    future: crate::erased::AsyncOutput,
    name: &'static str,
}

#[cfg(feature = "tokio")]
impl std::future::Future for CatchUnwind {
    type Output = std::result::Result<Result<Vec<u8>>, Panic>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let name = self.name;
        match crate::error::catch(name, || self.future.as_mut().poll(cx)) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(result)) => std::task::Poll::Ready(Ok(result)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}
