//! Waking a reactor from another thread, and saying why.
//!
//! mio gives a `Poll` one [`mio::Waker`]: one token, whatever the reason.
//! An [`Alarm`] is that waker with the reasons beside it, as bits set
//! before the wake and taken by the woken reactor, so that a compressor's
//! "results are ready" and worker 0's "reload" or "shut down" arrive as
//! what they are.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};

/// Why a reactor was woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Wake {
    /// Worker 0 took a SIGHUP: look at ROOT again, and take the live
    /// options it published, if it published any (every SIGHUP wakes the
    /// others, a failed reload or none without `--config` included).
    Reload = 1,
    /// Graceful (or immediate) shutdown was asked for.
    Shutdown = 2,
    /// The compressor finished files.
    Compressed = 4,
    /// Worker 0's upgrade successor serves: stop accepting, hand the
    /// connections over.
    Handover = 8,
    /// The password verifier is done with some credentials: drive the
    /// connections that waited for them.
    Verified = 16,
}

/// The reasons taken at one wake-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reasons(u8);

impl Reasons {
    pub fn has(self, wake: Wake) -> bool {
        self.0 & wake as u8 != 0
    }
}

/// A reactor's waker and the reasons it was woken for (see the module
/// docs).
pub struct Alarm {
    waker: mio::Waker,
    reasons: AtomicU8,
}

impl Alarm {
    /// An alarm whose wake-ups arrive at `registry`'s poll as `token`.
    pub fn new(registry: &mio::Registry, token: mio::Token) -> io::Result<Alarm> {
        Ok(Alarm {
            waker: mio::Waker::new(registry, token)?,
            reasons: AtomicU8::new(0),
        })
    }

    /// Wakes the reactor for `wake`. The reason is set before the wake
    /// (release), so the woken reactor sees it when it takes them.
    pub fn wake(&self, wake: Wake) {
        self.reasons.fetch_or(wake as u8, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            log::warn!("cannot wake a reactor ({wake:?}): {e}");
        }
    }

    /// The reasons since the last call, cleared.
    pub fn take(&self) -> Reasons {
        Reasons(self.reasons.swap(0, Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_taken_once() {
        let poll = mio::Poll::new().unwrap();
        let alarm = Alarm::new(poll.registry(), mio::Token(7)).unwrap();
        alarm.wake(Wake::Reload);
        alarm.wake(Wake::Compressed);
        let taken = alarm.take();
        assert!(taken.has(Wake::Reload) && taken.has(Wake::Compressed));
        assert!(!taken.has(Wake::Shutdown));
        assert_eq!(alarm.take(), Reasons::default());
    }
}
