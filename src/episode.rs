//! Failures that come in runs (a disk that fails every read, a log on a
//! full disk) are logged once per run, not once per request: the first
//! failure of an episode is logged with its error, the rest are counted,
//! and the episode ends once a success comes [`QUIET`] after the last
//! failure, with one more line that says how many there were. (A single
//! bad file among good ones is one episode while it keeps being asked
//! for, not a line each time.) nginx logs every one; at a thousand
//! requests a second that buries the one line that matters.

use std::fmt::Display;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long without a failure ends an episode.
pub const QUIET: Duration = Duration::from_secs(10);

/// One kind of failure's episode, shared by every worker.
pub struct Episode {
    what: &'static str,
    /// Failures in the episode under way; 0: none under way.
    failures: AtomicU64,
    /// When the last one happened, in ms since [`epoch`].
    last_ms: AtomicU64,
}

/// The instant episode times count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn ms(now: Instant) -> u64 {
    now.saturating_duration_since(epoch()).as_millis() as u64
}

impl Episode {
    pub const fn new(what: &'static str) -> Episode {
        Episode {
            what,
            failures: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    /// A failure: the first of an episode is logged, the rest counted.
    pub fn failed(&self, error: &dyn Display) {
        self.failed_at(error, Instant::now());
    }

    fn failed_at(&self, error: &dyn Display, now: Instant) {
        self.last_ms.store(ms(now), Ordering::Relaxed);
        if self.failures.fetch_add(1, Ordering::Relaxed) == 0 {
            log::error!(
                "{}: {error} (further failures are counted, not logged, until {} s pass without one)",
                self.what,
                QUIET.as_secs()
            );
        }
    }

    /// A success: ends an episode whose last failure is [`QUIET`] old.
    /// One relaxed load when none is under way, so it can sit on the hot
    /// path.
    pub fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.succeeded_at(Instant::now());
        }
    }

    fn succeeded_at(&self, now: Instant) {
        let last = self.last_ms.load(Ordering::Relaxed);
        if ms(now).saturating_sub(last) < QUIET.as_millis() as u64 {
            return;
        }
        let n = self.failures.swap(0, Ordering::Relaxed);
        if n > 0 {
            let s = if n == 1 { "" } else { "s" };
            log::info!("{}: works again, after {n} failure{s}", self.what);
        }
    }

    /// Failures in the episode under way.
    pub fn ongoing(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_counts_until_a_quiet_success() {
        let e = Episode::new("test");
        let t0 = epoch() + Duration::from_secs(100);
        e.succeeded_at(t0);
        assert_eq!(e.ongoing(), 0);
        e.failed_at(&"EIO", t0);
        e.succeeded_at(t0 + Duration::from_secs(1));
        e.failed_at(&"EIO", t0 + Duration::from_secs(2));
        assert_eq!(e.ongoing(), 2, "a success in between does not end it");
        e.succeeded_at(t0 + Duration::from_secs(11));
        assert_eq!(e.ongoing(), 2, "9 s after the last failure");
        e.succeeded_at(t0 + Duration::from_secs(12));
        assert_eq!(e.ongoing(), 0, "ended");
    }
}
