//! A driver's connection to Redis that rides out short outages: a command
//! that fails on a dropped connection, or while Redis loads its data
//! (`LOADING`) or runs a script (`BUSY`), is tried again on a new
//! connection until the reconnect window closes.

use std::time::{Duration, Instant};

use super::backoff::Backoff;
use crate::error::{Error, Result};

/// How long connecting, or one command's reply, may take before the
/// connection is taken for dead: well over any blocking read serfn makes.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection, made again when it fails.
pub(crate) struct Link {
    client: redis::Client,
    connection: Option<redis::Connection>,
    window: Duration,
    reconnected: bool,
}

impl Link {
    pub(crate) fn new(client: redis::Client, window: Duration) -> Self {
        Link {
            client,
            connection: None,
            window,
            reconnected: false,
        }
    }

    fn connection(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        if self.connection.is_none() {
            let connection = self.client.get_connection_with_timeout(REPLY_TIMEOUT)?;
            connection.set_read_timeout(Some(REPLY_TIMEOUT))?;
            connection.set_write_timeout(Some(REPLY_TIMEOUT))?;
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    /// Runs `op`, again on a new connection after a transient failure,
    /// until the reconnect window (from the first failure) closes.
    ///
    /// # Errors
    /// [`Error::Broker`] naming `doing` when `op` fails for good or the
    /// window closes.
    pub(crate) fn run<T>(
        &mut self,
        doing: &'static str,
        mut op: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let mut deadline = None;
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
        loop {
            let error = match self.connection().and_then(&mut op) {
                Ok(value) => return Ok(value),
                Err(error) if transient(&error) => error,
                Err(error) => return Err(broker(doing, &error)),
            };
            self.connection = None;
            self.reconnected = true;
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + self.window);
            if Instant::now() >= deadline {
                return Err(Error::Broker {
                    reason: format!(
                        "{doing}: {error} (Redis unreachable for the reconnect window of {:?})",
                        self.window
                    ),
                });
            }
            tracing::debug!(%error, "serfn redis driver: {doing}: trying again");
            backoff.sleep_until(deadline);
        }
    }

    /// Whether the connection was made again since the last call: what
    /// the broker holds may have been lost with it.
    pub(crate) fn take_reconnected(&mut self) -> bool {
        std::mem::take(&mut self.reconnected)
    }

    /// Runs `op` once on the current connection, if any, ignoring failure:
    /// for what is done on the way out.
    pub(crate) fn try_once(&mut self, op: impl FnOnce(&mut redis::Connection)) {
        if let Ok(connection) = self.connection() {
            op(connection);
        }
    }
}

fn broker(doing: &str, error: &redis::RedisError) -> Error {
    Error::Broker {
        reason: format!("{doing}: {error}"),
    }
}

/// Whether a failure may pass: the connection dropped or timed out, or
/// Redis is loading its data, busy with a script, or failing over.
pub(crate) fn transient(error: &redis::RedisError) -> bool {
    let passing = |code: &str| matches!(code, "LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN");
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.code().is_some_and(passing)
        // A pipeline's replies: `code` knows only the first one, and only
        // the codes redis-rs names (not `BUSY`).
        || error
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, error)| passing(error.code())))
}
