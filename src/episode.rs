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

    /// Whether this failure began an episode (and was logged).
    fn failed_at(&self, error: &dyn Display, now: Instant) -> bool {
        self.last_ms.store(ms(now), Ordering::Relaxed);
        let first = self.failures.fetch_add(1, Ordering::Relaxed) == 0;
        if first {
            log::error!(
                "{}: {error} (further failures are counted, not logged, until {} s pass without one)",
                self.what,
                QUIET.as_secs()
            );
        }
        first
    }

    /// A success: ends an episode whose last failure is [`QUIET`] old.
    /// One relaxed load when none is under way, so it can sit on the hot
    /// path.
    pub fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.succeeded_at(Instant::now());
        }
    }

    /// The failures of the episode this success ended (and logged), if
    /// it ended one.
    fn succeeded_at(&self, now: Instant) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if ms(now).saturating_sub(last) < QUIET.as_millis() as u64 {
            return None;
        }
        let n = self.failures.swap(0, Ordering::Relaxed);
        if n == 0 {
            return None;
        }
        log::info!("{}: works again, after {n} failure{}", self.what, plural(n));
        Some(n)
    }

    /// Failures in the episode under way.
    pub fn ongoing(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
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

    #[test]
    fn one_line_begins_an_episode_and_one_ends_it() {
        let e = Episode::new("test");
        let t0 = epoch() + Duration::from_secs(100);
        assert_eq!(e.succeeded_at(t0), None, "nothing to end");
        assert!(e.failed_at(&"EIO", t0), "the first is logged");
        assert!(!e.failed_at(&"EIO", t0), "the second is counted");
        assert!(!e.failed_at(&"EIO", t0 + Duration::from_secs(1)));
        let last = t0 + Duration::from_secs(1);
        assert_eq!(
            e.succeeded_at(last + QUIET - Duration::from_millis(1)),
            None
        );
        assert_eq!(
            e.succeeded_at(last + QUIET),
            Some(3),
            "exactly QUIET ends it"
        );
        assert_eq!(e.succeeded_at(last + QUIET * 2), None, "once");
        assert!(e.failed_at(&"EIO", last + QUIET * 2), "a new episode");
        assert_eq!(e.succeeded_at(last + QUIET * 3), Some(1));
        assert_eq!((plural(1), plural(2)), ("", "s"));
    }

    #[test]
    fn the_clock_reading_calls_count_failures() {
        let e = Episode::new("test");
        e.succeeded();
        assert_eq!(e.ongoing(), 0);
        e.failed(&"EIO");
        e.failed(&"EIO");
        assert_eq!(e.ongoing(), 2);
        // Not QUIET since: still under way.
        e.succeeded();
        assert_eq!(e.ongoing(), 2);
    }
}
