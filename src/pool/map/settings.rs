//! The settings both maps have: chunk size, timeout, progress.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Map, MapUnordered, Progress};

/// The `# Example` of a setting both maps have: the lines given, after a
/// `pool` and `square` (`x * x` on `u64`).
macro_rules! map_example {
    ($($line:expr),* $(,)?) => {
        concat!(
            "# Example\n```no_run\n# serfn::worker::init();\n# let pool = serfn::Pool::new()?;\n",
            "let square = serfn::closure!(\"square\", [], move |x: u64| -> u64 { x * x });\n",
            $($line, "\n",)*
            "# Ok::<(), serfn::Error>(())\n```",
        )
    };
}

macro_rules! map_settings {
    ($map:ident, $method:literal) => {
        impl<'p, A, R, I> $map<'p, A, R, I>
        where
            A: Serialize,
            R: DeserializeOwned + Send + 'static,
            I: Iterator<Item = A>,
        {
            /// Sends this many items per message, instead of sizing chunks
            /// automatically. Takes effect for chunks not yet sent. At 1,
            /// timed items are still handed over in groups (see
            /// [`PoolBuilder::chunk_size`](crate::PoolBuilder::chunk_size)).
            ///
            #[doc = map_example!(
                "let mut chunks = 0;",
                concat!("let n = pool.", $method, "(&square, 0..1_000)"),
                "    .chunk_size(250)",
                "    .on_progress(|_| chunks += 1) // once per chunk answered",
                "    .count();",
                "assert_eq!((n, chunks), (1_000, 4));",
            )]
            pub fn chunk_size(mut self, items: usize) -> Self {
                self.feed.chunk_size = Some(items.max(1));
                self
            }

            /// Kills a worker whose chunk runs longer than this, instead of
            /// the pool's [`timeout`](crate::PoolBuilder::timeout), and fails
            /// that chunk's items with [`Error::Timeout`](crate::Error::Timeout). Chunks are then
            /// one item each, unless a [`chunk_size`](Self::chunk_size) is set.
            /// For an [`AsyncSerFn`](crate::AsyncSerFn), the timeout is each
            /// item's own: see [`PoolBuilder::max_concurrent`](crate::PoolBuilder::max_concurrent).
            ///
            /// # Example
            /// ```no_run
            /// use std::time::Duration;
            ///
            /// serfn::worker::init();
            /// let pool = serfn::Pool::new()?;
            /// let nap = serfn::closure!("nap", [], move |ms: u64| -> u64 {
            ///     std::thread::sleep(Duration::from_millis(ms));
            ///     ms
            /// });
            /// let results: Vec<_> = pool.map(&nap, [1, 60_000, 2]).timeout(Duration::from_secs(1)).collect();
            /// assert!(matches!(results[1], Err(serfn::Error::Timeout { .. })));
            /// assert_eq!(results[2].as_ref().ok(), Some(&2));
            /// # Ok::<(), serfn::Error>(())
            /// ```
            pub fn timeout(mut self, timeout: Duration) -> Self {
                self.feed.timeout = Some(timeout);
                self
            }

            /// Calls `report` each time a chunk's results are in (a group's,
            /// at one item per message), on the thread that iterates. `Send`, so that a map, or its stream
            /// in a spawned task, may move between threads.
            ///
            #[doc = map_example!(
                "let mut last = None;",
                concat!("pool.", $method, "(&square, 0..1_000)"),
                "    .on_progress(|progress| last = Some(progress))",
                "    .for_each(drop);",
                "let last = last.expect(\"at least one chunk\");",
                "assert_eq!((last.done, last.total), (1_000, Some(1_000)));",
            )]
            pub fn on_progress(mut self, report: impl FnMut(Progress) + Send + 'p) -> Self {
                self.feed.progress = Some(Box::new(report));
                self
            }

            /// Shows an [`indicatif`] progress bar on stderr.
            ///
            #[doc = map_example!(
                concat!("let n = pool.", $method, "(&square, 0..1_000_000).progress_bar().count();"),
                "assert_eq!(n, 1_000_000);",
            )]
            #[cfg(feature = "progress")]
            #[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
            pub fn progress_bar(self) -> Self {
                let bar = match self.feed.total {
                    Some(total) => indicatif::ProgressBar::new(total as u64),
                    None => indicatif::ProgressBar::no_length(),
                };
                self.on_progress(move |progress| {
                    bar.set_position(progress.done as u64);
                    if Some(progress.done) == progress.total {
                        bar.finish();
                    }
                })
            }
        }

        impl<A, R, I> std::fmt::Debug for $map<'_, A, R, I> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($map))
                    .field("done", &self.feed.done)
                    .field("total", &self.feed.total)
                    .field("in_flight", &self.feed.in_flight_items)
                    .finish()
            }
        }
    };
}

map_settings!(Map, "map");
map_settings!(MapUnordered, "map_unordered");
