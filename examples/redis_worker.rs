//! A worker of a Redis fleet: runs the tasks that `redis_driver` (or any
//! driver linking the same functions) sends, until stopped with SIGTERM or
//! Ctrl-C, which let the running task finish first (OPERATIONS.md).
//!
//! `cargo run --release --features redis --example redis_worker -- redis://HOST:6379`
//!
//! Start as many as you like, on as many machines. With `SERFN_KEY` set (the
//! same secret as the driver's), it runs only signed tasks. With
//! `SERFN_CLAIM_IDLE_MS` set, it takes over tasks a dead worker left after
//! that many milliseconds instead of 30 s. Logs go to stderr through
//! `tracing` (`RUST_LOG=serfn=debug` for more), in colour only when stderr
//! is a terminal.

#[path = "shared/descent.rs"]
mod descent;

use serde::{Deserialize, Serialize};

/// Registered here with another capture layout than in the tests, which
/// check that a driver built from other code gets `Error::LayoutChanged`.
#[derive(Serialize, Deserialize)]
struct LayoutProbe {
    scale: f32,
    shift: f32,
}

#[serfn::register(name = "examples::layout_probe")]
impl serfn::Call<f64> for LayoutProbe {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * f64::from(self.scale) + f64::from(self.shift)
    }
}

fn main() -> serfn::Result<()> {
    use std::io::IsTerminal;

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "serfn=info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SERFN_REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let mut worker = serfn::redis::RedisWorker::new(&url);
    if let Ok(prefix) = std::env::var("SERFN_PREFIX") {
        worker = worker.prefix(prefix);
    }
    if let Ok(secret) = std::env::var("SERFN_KEY") {
        worker = worker.key(serfn::codec::Key::new(secret));
    }
    if let Ok(ms) = std::env::var("SERFN_CLAIM_IDLE_MS") {
        let Ok(ms) = ms.parse::<u64>() else {
            eprintln!("SERFN_CLAIM_IDLE_MS is not a number of milliseconds: {ms:?}");
            std::process::exit(2);
        };
        worker = worker.claim_idle(std::time::Duration::from_millis(ms));
    }
    worker.stop_on_signals().run()
}
