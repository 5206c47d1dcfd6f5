//! Counters the reactor keeps: what was accepted, served and closed, and
//! why. [`Stats`] and [`Gauges`] are plain integers owned by one reactor
//! thread; with `--workers`, each worker publishes them once per turn of
//! its loop into its own slot of [`Shared`] (relaxed atomic stores, never
//! contended), which the status page sums.
//!
//! **One list.** Each struct of counters is declared once, through
//! `counters!`: the declaration is the struct, its layout as a row of
//! `u64` cells ([`Cells`], what a worker's slot holds and what the totals
//! sum cell by cell), and, for the plain counters of [`Stats`], the table
//! [`Stats::TOTALS`] with the Prometheus family and help text that
//! [`crate::status`] prints from. A counter added to the list is
//! published, summed and exported; none is ever addressed by position.
//! Counters by kind (a close reason, an eviction class) are [`ByKind`]:
//! indexed by the kind itself, listed in the kind's own order.
//!
//! One file, a little over 600 lines, because it is one job: the macro,
//! the layout it makes and the counters declared with it are read
//! together, and split they would be kept in sync by hand again.

use std::marker::PhantomData;
use std::ops::{Index, IndexMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::close::CloseReason;
use crate::evict::{CLASSES, Class};
use crate::transport::Handshake;

/// Plain integers laid out as a row of `u64` cells, always in the same
/// order: what crosses between workers, and what the totals add up.
pub trait Cells {
    /// The row's length.
    const LEN: usize;
    /// Gives every cell, in row order.
    fn store(&self, out: &mut impl FnMut(u64));
    /// Takes every cell back, in the same order.
    fn load(&mut self, next: &mut impl FnMut() -> u64);
}

impl Cells for u64 {
    const LEN: usize = 1;
    fn store(&self, out: &mut impl FnMut(u64)) {
        out(*self);
    }
    fn load(&mut self, next: &mut impl FnMut() -> u64) {
        *self = next();
    }
}

/// Gauges count in `usize` (they are lengths); a cell holds any of them.
impl Cells for usize {
    const LEN: usize = 1;
    fn store(&self, out: &mut impl FnMut(u64)) {
        out(*self as u64);
    }
    fn load(&mut self, next: &mut impl FnMut() -> u64) {
        *self = next() as usize;
    }
}

impl<T: Cells, const N: usize> Cells for [T; N] {
    const LEN: usize = T::LEN * N;
    fn store(&self, out: &mut impl FnMut(u64)) {
        self.iter().for_each(|v| v.store(out));
    }
    fn load(&mut self, next: &mut impl FnMut() -> u64) {
        self.iter_mut().for_each(|v| v.load(next));
    }
}

/// A plain counter as the status formats print it: the JSON key (the
/// field's name), the Prometheus family (without `holdline_`) and its
/// help text.
pub struct Total<S> {
    pub name: &'static str,
    pub family: &'static str,
    pub help: &'static str,
    pub value: fn(&S) -> u64,
}

/// Declares a struct of counters from one list of fields: the struct and
/// its [`Cells`] row, the fields in the order listed.
macro_rules! cells {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])* pub $field:ident: $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Cells for $name {
            const LEN: usize = 0 $(+ <$ty as Cells>::LEN)*;
            fn store(&self, out: &mut impl FnMut(u64)) {
                $( self.$field.store(out); )*
            }
            fn load(&mut self, next: &mut impl FnMut() -> u64) {
                $( self.$field.load(next); )*
            }
        }
    };
}

/// As `cells!`, and a field may name its Prometheus family and help
/// (`=> "family", "help"`): those fields make `TOTALS`, in order.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                pub $field:ident: $ty:ty $(=> $family:literal, $help:literal)?,
            )*
        }
    ) => {
        cells! {
            $(#[$meta])*
            pub struct $name {
                $( $(#[doc = $doc])* pub $field: $ty, )*
            }
        }

        impl $name {
            /// The plain counters the status formats print one by one, in
            /// the order declared.
            pub const TOTALS: &'static [Total<$name>] = &[$($(
                Total {
                    name: stringify!($field),
                    family: $family,
                    help: $help,
                    value: |s: &$name| s.$field,
                },
            )?)*];
        }
    };
}

counters! {
    /// What one reactor counts; the status JSON follows this order.
    #[derive(Debug, Default, Clone)]
    pub struct Stats {
        /// Connections accepted from the kernel.
        pub accepted: u64 => "connections_accepted_total", "Connections accepted.",
        /// Connections kept (accepted and not refused at once).
        pub handled: u64 => "connections_handled_total", "Connections admitted and served.",
        /// Requests answered (error responses included).
        pub requests: u64 => "requests_total", "Requests answered.",
        /// Times accepting stopped because nothing could be evicted.
        pub accept_pauses: u64 => "accept_pauses_total",
            "Times accepting stopped because the fd budget was full and nothing could be evicted.",
        /// accept(2) failed with EMFILE/ENFILE.
        pub accept_emfile: u64 => "accept_emfile_total",
            "accept(2) failures with EMFILE or ENFILE.",
        /// File opens that failed with EMFILE/ENFILE, or found no fd room (503).
        pub open_emfile: u64 => "open_emfile_total",
            "File opens refused for lack of file descriptors (answered 503).",
        /// Requests answered 429 for passing `--client-rate`.
        pub client_rate_limited: u64 => "client_rate_limited_total",
            "Requests answered 429 because their client passed --client-rate.",
        /// Closes, by reason.
        pub closes: ByKind<CloseReason, { CloseReason::ALL.len() }>,
        /// TLS handshakes finished (failed ones are the `tls_error` closes).
        pub tls_handshakes: TlsHandshakes,
        /// On-the-fly compression, by what it did.
        pub compression: ByKind<CompressOutcome, { CompressOutcome::ALL.len() }>,
        /// Evictions, by the class of the victim.
        pub evictions: ByKind<Class, CLASSES>,
        /// Requests per closed connection.
        pub requests_per_connection: RequestsPerConnection,
    }
}

cells! {
    /// TLS handshakes finished, by kind and by protocol version: each
    /// handshake counts once in each pair.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct TlsHandshakes {
        /// A full handshake.
        pub full: u64,
        /// An abbreviated one: the client resumed a session.
        pub resumed: u64,
        pub tls1_2: u64,
        pub tls1_3: u64,
    }
}

/// Upper bounds of the requests-per-connection histogram buckets.
pub const REQUESTS_BUCKETS: [u32; 8] = [0, 1, 2, 5, 10, 20, 50, 100];

cells! {
    /// The requests-per-connection histogram.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct RequestsPerConnection {
        /// Connections closed after at most `REQUESTS_BUCKETS[i]` requests
        /// (and more than the bound before it).
        pub within: [u64; REQUESTS_BUCKETS.len()],
        /// Connections closed after more than the last bound.
        pub more: u64,
        /// Requests served by every closed connection.
        pub sum: u64,
    }
}

impl RequestsPerConnection {
    fn count(&mut self, requests: u32) {
        match REQUESTS_BUCKETS.iter().position(|&le| requests <= le) {
            Some(bucket) => self.within[bucket] += 1,
            None => self.more += 1,
        }
        self.sum += u64::from(requests);
    }

    /// Each bucket's upper bound and its count (not cumulative).
    pub fn buckets(&self) -> impl Iterator<Item = (u32, u64)> {
        REQUESTS_BUCKETS.into_iter().zip(self.within)
    }
}

cells! {
    /// Connections by phase and file bodies open, as the reactor counts them.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct Gauges {
        pub reading: usize,
        pub writing: usize,
        pub idle: usize,
        pub closing: usize,
        pub open_files: usize,
    }
}

impl Gauges {
    pub fn connections(&self) -> usize {
        self.reading + self.writing + self.idle + self.closing
    }
}

/// A kind of event counted by [`ByKind`]: an enum whose values list
/// themselves, each at its own index.
pub trait Kind: Copy + 'static {
    /// Every value; `ALL[k.index()] == k`.
    const ALL: &'static [Self];
    fn index(self) -> usize;
    /// The label in the status formats.
    fn name(self) -> &'static str;
}

impl Kind for CloseReason {
    const ALL: &'static [Self] = &CloseReason::ALL;
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Kind for Class {
    const ALL: &'static [Self] = &Class::ALL;
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Kind for CompressOutcome {
    const ALL: &'static [Self] = &CompressOutcome::ALL;
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// One counter per value of `K` (`N` of them), indexed by the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByKind<K, const N: usize> {
    counts: [u64; N],
    kind: PhantomData<K>,
}

impl<K: Kind, const N: usize> Default for ByKind<K, N> {
    fn default() -> Self {
        const { assert!(K::ALL.len() == N) };
        ByKind {
            counts: [0; N],
            kind: PhantomData,
        }
    }
}

impl<K: Kind, const N: usize> ByKind<K, N> {
    /// Every kind with its count, in `K::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = (K, u64)> + '_ {
        K::ALL.iter().map(|&k| (k, self[k]))
    }
}

impl<K: Kind, const N: usize> Index<K> for ByKind<K, N> {
    type Output = u64;
    fn index(&self, kind: K) -> &u64 {
        &self.counts[kind.index()]
    }
}

impl<K: Kind, const N: usize> IndexMut<K> for ByKind<K, N> {
    fn index_mut(&mut self, kind: K) -> &mut u64 {
        &mut self.counts[kind.index()]
    }
}

impl<K, const N: usize> Cells for ByKind<K, N> {
    const LEN: usize = N;
    fn store(&self, out: &mut impl FnMut(u64)) {
        self.counts.store(out);
    }
    fn load(&mut self, next: &mut impl FnMut() -> u64) {
        self.counts.load(next);
    }
}

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

impl Stats {
    pub fn count_close(&mut self, reason: CloseReason) {
        self.closes[reason] += 1;
    }

    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.closes[reason]
    }

    pub fn count_handshake(&mut self, handshake: Handshake) {
        let counts = &mut self.tls_handshakes;
        *if handshake.resumed {
            &mut counts.resumed
        } else {
            &mut counts.full
        } += 1;
        *if handshake.tls13 {
            &mut counts.tls1_3
        } else {
            &mut counts.tls1_2
        } += 1;
    }

    pub fn count_compression(&mut self, outcome: CompressOutcome, n: u64) {
        self.compression[outcome] += n;
    }

    pub fn count_requests_per_connection(&mut self, requests: u32) {
        self.requests_per_connection.count(requests);
    }
}

/// A worker's counters and gauges as one row of cells.
const ROW: usize = Stats::LEN + Gauges::LEN;

fn to_row(stats: &Stats, gauges: &Gauges) -> [u64; ROW] {
    let mut row = [0; ROW];
    let mut cells = row.iter_mut();
    let mut out = |v| {
        if let Some(cell) = cells.next() {
            *cell = v;
        }
    };
    stats.store(&mut out);
    gauges.store(&mut out);
    row
}

fn from_row(row: &[u64; ROW]) -> (Stats, Gauges) {
    let mut cells = row.iter().copied();
    let mut next = || cells.next().unwrap_or(0);
    let (mut stats, mut gauges) = (Stats::default(), Gauges::default());
    stats.load(&mut next);
    gauges.load(&mut next);
    (stats, gauges)
}

/// One worker's published row, on cache lines of its own.
#[repr(align(64))]
struct Slot([AtomicU64; ROW]);

impl Slot {
    fn read(&self) -> [u64; ROW] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// How far shutdown has gone; it only moves forward, and every worker
/// follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Shutdown {
    /// Serving.
    Running,
    /// The first SIGTERM or SIGINT with a `--drain-delay`: still serving
    /// and accepting, the health check failing and every response saying
    /// close, so that a load balancer takes the instance out; then
    /// [`Shutdown::Graceful`].
    Draining,
    /// The first SIGTERM or SIGINT (or the end of the drain): stop
    /// accepting, let the connections finish, up to `--shutdown-timeout`.
    Graceful,
    /// A signal during the graceful shutdown: exit at once.
    Immediate,
}

impl Shutdown {
    fn from_u8(level: u8) -> Shutdown {
        match level {
            0 => Shutdown::Running,
            1 => Shutdown::Draining,
            2 => Shutdown::Graceful,
            _ => Shutdown::Immediate,
        }
    }
}

/// The workers' counters and the shutdown state: each worker's counters,
/// published once per turn of its loop (relaxed stores to its own slot;
/// nothing is contended), read and summed by whichever worker answers a
/// status request. (The reloaded configuration, the access log's writer
/// and the TLS setup are shared too, each by the part that owns it.)
pub struct Shared {
    slots: Vec<Slot>,
    /// A [`Shutdown`], as its `u8`.
    shutdown: AtomicU8,
    /// The ACME manager's certificates and attempts (empty without it).
    pub acme: Arc<crate::acme::AcmeStatus>,
}

impl Shared {
    pub fn new(workers: usize) -> Shared {
        Shared {
            slots: (0..workers.max(1))
                .map(|_| Slot(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            shutdown: AtomicU8::new(Shutdown::Running as u8),
            acme: Arc::default(),
        }
    }

    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    pub fn publish(&self, worker: usize, stats: &Stats, gauges: &Gauges) {
        let mut cells = self.slots[worker].0.iter();
        let mut out = |v| {
            if let Some(cell) = cells.next() {
                cell.store(v, Ordering::Relaxed);
            }
        };
        stats.store(&mut out);
        gauges.store(&mut out);
    }

    /// Every worker's figures summed, with `worker`'s own live ones in
    /// place of what it last published.
    pub fn total(&self, worker: usize, stats: &Stats, gauges: &Gauges) -> (Stats, Gauges) {
        let mut sum = to_row(stats, gauges);
        let others = self.slots.iter().enumerate().filter(|(w, _)| *w != worker);
        for (_, slot) in others {
            for (acc, cell) in sum.iter_mut().zip(&slot.0) {
                *acc += cell.load(Ordering::Relaxed);
            }
        }
        from_row(&sum)
    }

    /// Connections handled by each worker (live for `worker`). Each other
    /// slot is read whole and taken apart as it was published.
    pub fn handled_by_worker(&self, worker: usize, stats: &Stats) -> Vec<u64> {
        self.slots
            .iter()
            .enumerate()
            .map(|(w, slot)| {
                if w == worker {
                    stats.handled
                } else {
                    from_row(&slot.read()).0.handled
                }
            })
            .collect()
    }

    /// Moves shutdown forward to `level` (never back).
    pub fn request_shutdown(&self, level: Shutdown) {
        self.shutdown.fetch_max(level as u8, Ordering::SeqCst);
    }

    pub fn shutdown_level(&self) -> Shutdown {
        Shutdown::from_u8(self.shutdown.load(Ordering::SeqCst))
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
        assert_eq!(stats.closes(CloseReason::InternalError), 1);
    }

    fn lists_itself<K: Kind + PartialEq + std::fmt::Debug>() {
        for (i, kind) in K::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind:?}");
        }
    }

    #[test]
    fn every_kind_lists_itself_at_its_index() {
        lists_itself::<CloseReason>();
        lists_itself::<Class>();
        lists_itself::<CompressOutcome>();
    }

    #[test]
    fn requests_per_connection_buckets_by_upper_bound() {
        let mut stats = Stats::default();
        for n in [0, 1, 3, 100, 101] {
            stats.count_requests_per_connection(n);
        }
        let h = stats.requests_per_connection;
        assert_eq!(h.within, [1, 1, 0, 1, 0, 0, 0, 1]);
        assert_eq!((h.more, h.sum), (1, 205));
    }

    #[test]
    fn a_row_round_trips_and_sums() {
        let mut stats = Stats {
            accepted: 3,
            ..Stats::default()
        };
        stats.count_close(CloseReason::Evicted);
        stats.count_requests_per_connection(7);
        stats.evictions[Class::PartialHead] = 4;
        stats.tls_handshakes = TlsHandshakes {
            full: 5,
            resumed: 6,
            tls1_2: 7,
            tls1_3: 8,
        };
        stats.count_compression(CompressOutcome::Skipped, 9);
        let gauges = Gauges {
            reading: 1,
            writing: 2,
            idle: 3,
            closing: 4,
            open_files: 5,
        };
        let (s, g) = from_row(&to_row(&stats, &gauges));
        assert_eq!(g, gauges);
        assert_eq!(s.accepted, 3);
        assert_eq!(s.closes(CloseReason::Evicted), 1);
        assert_eq!(s.evictions, stats.evictions);
        assert_eq!(s.evictions[Class::PartialHead], 4);
        assert_eq!(s.requests_per_connection.sum, 7);
        assert_eq!(s.tls_handshakes, stats.tls_handshakes);
        assert_eq!(s.compression[CompressOutcome::Skipped], 9);
        let shared = Shared::new(2);
        shared.publish(1, &stats, &gauges);
        let (total, g2) = shared.total(0, &stats, &gauges);
        assert_eq!(total.accepted, 6);
        assert_eq!(g2.idle, 6);
        assert_eq!(shared.handled_by_worker(0, &stats), [0, 0]);
        stats.handled = 2;
        shared.publish(1, &stats, &gauges);
        assert_eq!(shared.handled_by_worker(0, &Stats::default()), [0, 2]);
    }

    #[test]
    fn shutdown_only_moves_forward() {
        let shared = Shared::new(1);
        assert_eq!(shared.shutdown_level(), Shutdown::Running);
        shared.request_shutdown(Shutdown::Immediate);
        shared.request_shutdown(Shutdown::Graceful);
        assert_eq!(shared.shutdown_level(), Shutdown::Immediate);
    }
}
