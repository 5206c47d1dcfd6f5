//! Counters the reactor keeps: what was accepted, served and closed, and
//! why. [`Stats`] and [`Gauges`] are plain integers owned by one reactor
//! thread; with `--workers`, each worker publishes them once per turn of
//! its loop into its own slot of [`Shared`] (relaxed atomic stores, never
//! contended), which the status page sums.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::close::CloseReason;
use crate::evict::CLASSES;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Connections accepted from the kernel.
    pub accepted: u64,
    /// Connections kept (accepted and not refused at once).
    pub handled: u64,
    /// Requests answered (error responses included).
    pub requests: u64,
    closes: [u64; CloseReason::ALL.len()],
    /// accept(2) failed with EMFILE/ENFILE.
    pub accept_emfile: u64,
    /// File opens that failed with EMFILE/ENFILE, or found no fd room (503).
    pub open_emfile: u64,
    /// Times accepting stopped because nothing could be evicted.
    pub accept_pauses: u64,
    /// Evictions by the class of the victim, in [`Class::ALL`](crate::evict::Class::ALL) order.
    pub evictions: [u64; CLASSES],
    /// Requests per closed connection, bucketed by [`REQUESTS_BUCKETS`].
    pub requests_per_connection: [u64; REQUESTS_BUCKETS.len() + 1],
    pub requests_per_connection_sum: u64,
    /// TLS handshakes finished: [full, resumed, TLS 1.2, TLS 1.3] (failed
    /// ones are the `tls_error` closes).
    pub tls_handshakes: [u64; 4],
    /// On-the-fly compression, by [`CompressOutcome`]: responses served
    /// compressed from the cache, files handed to the compressor, files
    /// not handed over (its queue was full), files it finished.
    pub compression: [u64; 4],
}

/// Upper bounds of the requests-per-connection histogram buckets.
/// What on-the-fly compression did for a request (or a finished file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressOutcome {
    /// Served from the compressed cache.
    Hit,
    /// Answered as is; the file went to the compressor.
    Queued,
    /// Answered as is; the compressor's queue was full.
    Skipped,
    /// The compressor finished a file.
    Compressed,
}

impl CompressOutcome {
    pub const ALL: [CompressOutcome; 4] = [
        CompressOutcome::Hit,
        CompressOutcome::Queued,
        CompressOutcome::Skipped,
        CompressOutcome::Compressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CompressOutcome::Hit => "hit",
            CompressOutcome::Queued => "queued",
            CompressOutcome::Skipped => "skipped",
            CompressOutcome::Compressed => "compressed",
        }
    }
}

pub const REQUESTS_BUCKETS: [u32; 8] = [0, 1, 2, 5, 10, 20, 50, 100];

/// Connections by phase and file bodies open, as the reactor counts them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    pub reading: usize,
    pub writing: usize,
    pub idle: usize,
    pub closing: usize,
    pub open_files: usize,
}

impl Gauges {
    pub fn connections(&self) -> usize {
        self.reading + self.writing + self.idle + self.closing
    }
}

impl Stats {
    pub fn count_close(&mut self, reason: CloseReason) {
        self.closes[reason as usize] += 1;
    }

    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.closes[reason as usize]
    }

    pub fn count_handshake(&mut self, handshake: crate::transport::Handshake) {
        self.tls_handshakes[usize::from(handshake.resumed)] += 1;
        self.tls_handshakes[2 + usize::from(handshake.tls13)] += 1;
    }

    pub fn count_compression(&mut self, outcome: CompressOutcome, n: u64) {
        self.compression[outcome as usize] += n;
    }

    pub fn count_requests_per_connection(&mut self, requests: u32) {
        let bucket = REQUESTS_BUCKETS
            .iter()
            .position(|&le| requests <= le)
            .unwrap_or(REQUESTS_BUCKETS.len());
        self.requests_per_connection[bucket] += 1;
        self.requests_per_connection_sum += u64::from(requests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_counter() {
        let mut stats = Stats::default();
        for reason in CloseReason::ALL {
            stats.count_close(reason);
        }
        stats.count_close(CloseReason::IdleTimeout);
        assert_eq!(stats.closes(CloseReason::IdleTimeout), 2);
        assert_eq!(stats.closes(CloseReason::Client), 1);
    }
}

/// Counters and gauges as one flat array, for publishing across workers.
const FLAT: usize = 6 + CLASSES + CLOSE_REASONS + (REQUESTS_BUCKETS.len() + 1) + 1 + 4 + 4 + 5;
const CLOSE_REASONS: usize = CloseReason::ALL.len();

fn flatten(stats: &Stats, gauges: &Gauges) -> [u64; FLAT] {
    let mut out = [0u64; FLAT];
    let mut i = 0;
    let mut push = |v: u64| {
        out[i] = v;
        i += 1;
    };
    for v in [
        stats.accepted,
        stats.handled,
        stats.requests,
        stats.accept_emfile,
        stats.open_emfile,
        stats.accept_pauses,
    ] {
        push(v);
    }
    stats.evictions.iter().for_each(|&v| push(v));
    stats.closes.iter().for_each(|&v| push(v));
    stats.requests_per_connection.iter().for_each(|&v| push(v));
    push(stats.requests_per_connection_sum);
    stats.tls_handshakes.iter().for_each(|&v| push(v));
    stats.compression.iter().for_each(|&v| push(v));
    for v in [
        gauges.reading,
        gauges.writing,
        gauges.idle,
        gauges.closing,
        gauges.open_files,
    ] {
        push(v as u64);
    }
    out
}

fn unflatten(flat: &[u64; FLAT]) -> (Stats, Gauges) {
    let mut it = flat.iter().copied();
    let mut next = || it.next().unwrap_or(0);
    let mut stats = Stats {
        accepted: next(),
        handled: next(),
        requests: next(),
        accept_emfile: next(),
        open_emfile: next(),
        accept_pauses: next(),
        ..Stats::default()
    };
    stats.evictions.iter_mut().for_each(|v| *v = next());
    stats.closes.iter_mut().for_each(|v| *v = next());
    stats
        .requests_per_connection
        .iter_mut()
        .for_each(|v| *v = next());
    stats.requests_per_connection_sum = next();
    stats.tls_handshakes.iter_mut().for_each(|v| *v = next());
    stats.compression.iter_mut().for_each(|v| *v = next());
    let gauges = Gauges {
        reading: next() as usize,
        writing: next() as usize,
        idle: next() as usize,
        closing: next() as usize,
        open_files: next() as usize,
    };
    (stats, gauges)
}

/// One worker's published counters, on cache lines of its own.
#[repr(align(64))]
struct Slot([AtomicU64; FLAT]);

/// What workers share: each worker's counters, published once per turn of
/// its loop (relaxed stores to its own slot; nothing is contended), and
/// the shutdown state. Nothing else crosses between workers.
pub struct Shared {
    slots: Vec<Slot>,
    /// 0 running, 1 graceful shutdown, 2 exit now.
    shutdown: AtomicU8,
}

impl Shared {
    pub fn new(workers: usize) -> Shared {
        Shared {
            slots: (0..workers.max(1))
                .map(|_| Slot(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            shutdown: AtomicU8::new(0),
        }
    }

    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    pub fn publish(&self, worker: usize, stats: &Stats, gauges: &Gauges) {
        let flat = flatten(stats, gauges);
        for (cell, v) in self.slots[worker].0.iter().zip(flat) {
            cell.store(v, Ordering::Relaxed);
        }
    }

    /// Every worker's figures summed, with `worker`'s own live ones in
    /// place of what it last published.
    pub fn total(&self, worker: usize, stats: &Stats, gauges: &Gauges) -> (Stats, Gauges) {
        let mut sum = flatten(stats, gauges);
        let others = self.slots.iter().enumerate().filter(|(w, _)| *w != worker);
        for (_, slot) in others {
            for (acc, cell) in sum.iter_mut().zip(&slot.0) {
                *acc += cell.load(Ordering::Relaxed);
            }
        }
        unflatten(&sum)
    }

    /// Connections handled by each worker (live for `worker`).
    pub fn handled_by_worker(&self, worker: usize, stats: &Stats) -> Vec<u64> {
        self.slots
            .iter()
            .enumerate()
            .map(|(w, slot)| {
                if w == worker {
                    stats.handled
                } else {
                    slot.0[1].load(Ordering::Relaxed)
                }
            })
            .collect()
    }

    pub fn request_shutdown(&self, level: u8) {
        self.shutdown.fetch_max(level, Ordering::SeqCst);
    }

    pub fn shutdown_level(&self) -> u8 {
        self.shutdown.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;

    #[test]
    fn flatten_round_trips_and_sums() {
        let mut stats = Stats {
            accepted: 3,
            ..Stats::default()
        };
        stats.count_close(CloseReason::Evicted);
        stats.count_requests_per_connection(7);
        stats.evictions[2] = 4;
        stats.tls_handshakes = [5, 6, 7, 8];
        stats.count_compression(CompressOutcome::Skipped, 9);
        let gauges = Gauges {
            reading: 1,
            writing: 2,
            idle: 3,
            closing: 4,
            open_files: 5,
        };
        let (s, g) = unflatten(&flatten(&stats, &gauges));
        assert_eq!(g, gauges);
        assert_eq!(s.accepted, 3);
        assert_eq!(s.closes(CloseReason::Evicted), 1);
        assert_eq!(s.evictions, [0, 0, 4, 0, 0]);
        assert_eq!(s.requests_per_connection_sum, 7);
        assert_eq!(s.tls_handshakes, [5, 6, 7, 8]);
        assert_eq!(s.compression, [0, 0, 9, 0]);
        let shared = Shared::new(2);
        shared.publish(1, &stats, &gauges);
        let (total, g2) = shared.total(0, &stats, &gauges);
        assert_eq!(total.accepted, 6);
        assert_eq!(g2.idle, 6);
        assert_eq!(shared.handled_by_worker(0, &stats), [0, 0]);
    }
}
