//! The pause between attempts to reach Redis: it grows, is jittered (so that
//! a fleet does not come back in lockstep), and is capped.

use std::time::Duration;

/// Pauses that double from `first` to `cap`, each jittered by up to ±25 %.
pub(crate) struct Backoff {
    first: Duration,
    next: Duration,
    cap: Duration,
    seed: u64,
}

impl Backoff {
    pub(crate) fn new(first: Duration, cap: Duration) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Backoff {
            first,
            next: first,
            cap,
            // Odd, and different in every process of a fleet started at once.
            seed: nanos ^ (u64::from(std::process::id()) << 32) | 1,
        }
    }

    /// The next pause: the current one, jittered; the one after doubles.
    pub(crate) fn pause(&mut self) -> Duration {
        // xorshift64: jitter needs no more than this.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.next;
        self.next = (self.next * 2).min(self.cap);
        let quarter = base.as_nanos() as u64 / 4;
        let jitter = if quarter == 0 {
            0
        } else {
            self.seed % (2 * quarter)
        };
        (base - Duration::from_nanos(quarter)) + Duration::from_nanos(jitter)
    }

    /// Back to the first pause, after a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }

    /// Sleeps for the next pause, or until `deadline` if that is sooner.
    pub(crate) fn sleep_until(&mut self, deadline: std::time::Instant) {
        let pause = self.pause();
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        std::thread::sleep(pause.min(left));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_jittered_to_the_cap_and_reset() {
        let (first, cap) = (Duration::from_millis(50), Duration::from_secs(2));
        let mut backoff = Backoff::new(first, cap);
        let pauses: Vec<Duration> = (0..12).map(|_| backoff.pause()).collect();
        let mut base = first;
        for pause in &pauses {
            assert!(
                *pause >= base * 3 / 4 && *pause <= base * 5 / 4,
                "{pause:?} for {base:?}"
            );
            base = (base * 2).min(cap);
        }
        assert!(pauses[11] >= cap * 3 / 4 && pauses[11] <= cap * 5 / 4);
        // Jittered: not all the capped pauses are equal.
        assert!(pauses[8..].windows(2).any(|w| w[0] != w[1]), "{pauses:?}");
        backoff.reset();
        assert!(backoff.pause() <= first * 5 / 4);
    }
}
