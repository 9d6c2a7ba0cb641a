//! `event!`: a [`tracing`](https://docs.rs/tracing) event under the
//! `tracing` feature, nothing without it, so that stderr stays quiet by
//! default. Its arguments must not be needed for anything else: without the
//! feature they are not evaluated.

/// `event!(warn, slot = 1, "message {}", x)`: `tracing::warn!` with the
/// `serfn` target, or nothing.
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        ::tracing::$level!(target: "serfn", $($arg)+);
    };
}

pub(crate) use event;
