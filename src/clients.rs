//! Per-client limits (nginx's `limit_conn` and `limit_req`), as plain
//! code over addresses and an `Instant`: connections per client, counted
//! by the reactor at accept and close, and a request rate per client with
//! a burst (a token bucket), asked by the responder per request.
//!
//! A client is an address cut to a prefix (`--client-prefix-v4`,
//! `--client-prefix-v6`: by default one IPv4 address, one IPv6 /64,
//! which one host usually owns whole). Both tables are bounded whatever
//! the addresses: the connection table holds only clients with a
//! connection open, so never more entries than the fd budget admits
//! connections; the rate table holds at most `--client-table-entries`,
//! and when full gives up a client whose bucket has refilled (a full
//! bucket is what a new client starts with: forgetting it loses
//! nothing), else the one seen least recently, so a client that keeps
//! asking keeps its empty bucket through a flood of others. A flood of
//! spoofed sources completes no TCP handshake, so it never reaches either
//! table. Both are the process's ([`Tables`]), shared by every worker:
//! with `--workers N` a client's connections spread over the workers, and
//! its limits hold over all of them (one lock each, taken per accept and
//! close, and per request with `--client-rate`: uncontended but for the
//! instant two workers admit or answer at once).
//!
//! The tables are `HashMap`s with their capacity reserved at start (and
//! SipHash's random keys, so that no client can choose colliding
//! addresses): inserting and removing within it does not allocate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Both tables, shared by every worker.
#[derive(Debug)]
pub struct Tables {
    connections: Mutex<Connections>,
    rates: Mutex<Rates>,
}

impl Tables {
    /// Tables for up to `connections` open at once (the whole fd
    /// budget's), at most `max` per client, and a rate table of
    /// `entries` with `rate` and `burst`.
    pub fn new(connections: usize, max: u32, entries: usize, rate: f64, burst: u32) -> Tables {
        Tables {
            connections: Mutex::new(Connections::new(connections, max)),
            rates: Mutex::new(Rates::new(entries, rate, burst)),
        }
    }

    /// The connections table, locked (a panic that poisoned it left it
    /// consistent: every change is one statement on the map).
    pub fn connections(&self) -> MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rate table, locked.
    pub fn rates(&self) -> MutexGuard<'_, Rates> {
        self.rates.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A client: its address with the host bits past its prefix cleared, as
/// an IPv6 address (IPv4 mapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(u128);

/// How addresses are grouped into clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefixes {
    pub v4: u8,
    pub v6: u8,
}

impl Prefixes {
    /// The client `addr` belongs to.
    pub fn client(self, addr: IpAddr) -> Client {
        match addr {
            IpAddr::V4(v4) => {
                let bits = u32::from(self.v4.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                // Kept in ::ffff:0:0/96, where no IPv6 client lies.
                Client(u128::from(u32::from(v4) & mask) | 0xffff << 32)
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.client(IpAddr::V4(v4)),
                None => {
                    let bits = u32::from(self.v6.min(128));
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    Client(u128::from(v6) & mask)
                }
            },
        }
    }
}

/// Open connections per client (counted with or without a limit: the
/// eviction prefers the heaviest client's).
#[derive(Debug)]
pub struct Connections {
    open: HashMap<Client, u32>,
    /// At most this many per client; 0: no limit.
    max: u32,
    /// The client that held the most at its last admission (and its
    /// count now): an approximation kept in O(1), refreshed whenever a
    /// client passes it.
    heaviest: Option<(Client, u32)>,
}

impl Connections {
    /// A table for up to `connections` open at once (the fd budget's).
    pub fn new(connections: usize, max: u32) -> Connections {
        Connections {
            open: HashMap::with_capacity(connections),
            max,
            heaviest: None,
        }
    }

    /// A reload's `--max-client-connections`.
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
    }

    /// Counts a connection of `client`, unless it has its maximum open
    /// (then `false`, and nothing is counted).
    pub fn admit(&mut self, client: Client) -> bool {
        let count = self.open.entry(client).or_insert(0);
        if self.max > 0 && *count >= self.max {
            return false;
        }
        *count += 1;
        let count = *count;
        if self.heaviest.is_none_or(|(_, most)| count > most) {
            self.heaviest = Some((client, count));
        }
        true
    }

    /// Counts a connection of `client` whatever its count (one handed
    /// over by the process before an upgrade: it is open already).
    pub fn adopt(&mut self, client: Client) {
        *self.open.entry(client).or_insert(0) += 1;
    }

    /// A connection `admit` or `adopt` counted has closed.
    pub fn release(&mut self, client: Client) {
        if let Some(count) = self.open.get_mut(&client) {
            *count -= 1;
            let left = *count;
            if left == 0 {
                self.open.remove(&client);
            }
            if let Some((heavy, most)) = &mut self.heaviest
                && *heavy == client
            {
                *most = left;
            }
        }
    }

    /// The client holding the most connections (approximately: see the
    /// field), when it holds more than a quarter of `open` and at least
    /// two: whose connections the eviction takes first.
    pub fn hog(&self, open: usize) -> Option<Client> {
        self.heaviest
            .filter(|&(_, most)| most >= 2 && most as usize * 4 > open)
            .map(|(client, _)| client)
    }

    /// Open connections of `client` (as counted).
    pub fn of(&self, client: Client) -> u32 {
        self.open.get(&client).copied().unwrap_or(0)
    }

    /// Clients with a connection open.
    pub fn clients(&self) -> usize {
        self.open.len()
    }

    /// The heap the table takes per connection it is sized for, at most
    /// (for the memory bound): an entry and its control byte, over
    /// hashbrown's 7/8 load, doubled for its power-of-two rounding.
    pub fn bytes_per_connection() -> usize {
        (2 * 8 * (std::mem::size_of::<(Client, u32)>() + 1)).div_ceil(7)
    }
}

/// A `HashMap` of `capacity` entries of `T`: hashbrown keeps at most 7/8
/// of its slots full, in a power of two, with a control byte each.
fn table_bytes<T>(capacity: usize) -> usize {
    let slots = capacity
        .saturating_mul(8)
        .div_ceil(7)
        .checked_next_power_of_two();
    slots.map_or(usize::MAX, |n| {
        n.saturating_mul(std::mem::size_of::<T>() + 1)
    })
}

/// How many of a full rate table's clients are looked at to give one
/// place up: a bound on the work a new client costs.
pub const FORGET_SCAN: usize = 64;

/// A token bucket per client: `rate` requests a second, `burst` at once.
#[derive(Debug)]
pub struct Rates {
    buckets: HashMap<Client, Bucket>,
    capacity: usize,
    /// Tokens a second; 0: no limit.
    rate: f64,
    burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Rates {
    /// `rate` requests a second (0: off) with `burst`, for at most
    /// `capacity` clients remembered.
    pub fn new(capacity: usize, rate: f64, burst: u32) -> Rates {
        Rates {
            buckets: HashMap::with_capacity(if rate > 0.0 { capacity } else { 0 }),
            capacity: capacity.max(1),
            rate,
            burst: f64::from(burst.max(1)),
        }
    }

    /// A reload's rate and burst (the buckets go on, refilled at the new
    /// rate up to the new burst).
    pub fn set(&mut self, rate: f64, burst: u32) {
        if self.rate == 0.0 && rate > 0.0 {
            *self = Rates::new(self.capacity, rate, burst);
        }
        self.rate = rate;
        self.burst = f64::from(burst.max(1));
    }

    /// Takes a token for a request of `client` at `now`, or says how long
    /// until one is there (for `Retry-After`).
    pub fn take(&mut self, client: Client, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let (rate, burst) = (self.rate, self.burst);
        if !self.buckets.contains_key(&client) && self.buckets.len() >= self.capacity {
            self.forget_one(now);
        }
        let bucket = self.buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
    }

    /// Gives up one client's place, looking at [`FORGET_SCAN`] of them at
    /// most (the table is full: a flood of new clients must not cost a
    /// scan of the whole table each): the first whose bucket has refilled
    /// (it would start full again: forgetting it changes nothing), else
    /// the one among them seen least recently (a client that keeps asking,
    /// refused or not, is seen often, and keeps its empty bucket).
    fn forget_one(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        let mut oldest: Option<(Client, Instant)> = None;
        for (client, bucket) in self.buckets.iter().take(FORGET_SCAN) {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            if bucket.tokens + elapsed * rate >= burst {
                oldest = Some((*client, bucket.at));
                break;
            }
            if oldest.is_none_or(|(_, at)| bucket.at < at) {
                oldest = Some((*client, bucket.at));
            }
        }
        if let Some((client, _)) = oldest {
            self.buckets.remove(&client);
        }
    }

    /// Clients remembered.
    pub fn clients(&self) -> usize {
        self.buckets.len()
    }

    /// The heap one table of `capacity` clients takes at most (for the
    /// memory bound).
    pub fn bytes_for(capacity: usize) -> usize {
        table_bytes::<(Client, Bucket)>(capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_group_addresses_into_clients() {
        let exact = Prefixes { v4: 32, v6: 64 };
        assert_eq!(
            exact.client(ip("10.0.0.1")),
            exact.client(ip("::ffff:10.0.0.1"))
        );
        assert_ne!(exact.client(ip("10.0.0.1")), exact.client(ip("10.0.0.2")));
        assert_eq!(
            exact.client(ip("2001:db8::1")),
            exact.client(ip("2001:db8::ffff:1"))
        );
        assert_ne!(
            exact.client(ip("2001:db8::1")),
            exact.client(ip("2001:db8:0:1::1"))
        );
        // An IPv4 client never equals an IPv6 one.
        assert_ne!(exact.client(ip("0.0.0.1")), exact.client(ip("::1")));
        let wide = Prefixes { v4: 24, v6: 48 };
        assert_eq!(wide.client(ip("10.0.0.1")), wide.client(ip("10.0.0.254")));
        assert_ne!(wide.client(ip("10.0.0.1")), wide.client(ip("10.0.1.1")));
        assert_eq!(
            wide.client(ip("2001:db8::1")),
            wide.client(ip("2001:db8:0:ff::1"))
        );
        let all = Prefixes { v4: 0, v6: 0 };
        assert_eq!(all.client(ip("1.2.3.4")), all.client(ip("5.6.7.8")));
        let full = Prefixes { v4: 32, v6: 128 };
        assert_ne!(full.client(ip("::1")), full.client(ip("::2")));
    }

    #[test]
    fn connections_are_counted_up_to_the_maximum() {
        let p = Prefixes { v4: 32, v6: 64 };
        let (a, b) = (p.client(ip("10.0.0.1")), p.client(ip("10.0.0.2")));
        let mut table = Connections::new(10, 2);
        assert!(table.admit(a) && table.admit(a));
        assert!(!table.admit(a), "a third");
        assert_eq!(table.of(a), 2);
        assert!(table.admit(b));
        table.release(a);
        assert!(table.admit(a));
        for _ in 0..2 {
            table.release(a);
        }
        table.release(b);
        assert_eq!(table.clients(), 0, "closed clients are forgotten");
        // A release of what was never counted changes nothing.
        table.release(a);
        assert_eq!(table.of(a), 0);
        let mut off = Connections::new(10, 0);
        assert!((0..100).all(|_| off.admit(a)));
        assert_eq!(off.of(a), 100, "counted without a limit too");
        // The hog: the client with the most, past a quarter of all.
        assert_eq!(off.hog(100), Some(a));
        assert_eq!(off.hog(400), None);
        assert!(off.admit(b) && off.admit(b));
        assert_eq!(off.hog(102), Some(a));
        for _ in 0..100 {
            off.release(a);
        }
        assert_eq!(off.hog(2), None, "a hog that left is no longer one");
        assert!(off.admit(b));
        assert_eq!(off.hog(3), Some(b));
    }

    #[test]
    fn rates_allow_a_burst_then_the_rate() {
        let p = Prefixes { v4: 32, v6: 64 };
        let a = p.client(ip("10.0.0.1"));
        let t0 = Instant::now();
        let mut rates = Rates::new(100, 10.0, 3);
        for _ in 0..3 {
            assert_eq!(rates.take(a, t0), Ok(()));
        }
        let wait = rates.take(a, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // A tenth of a second brings one token back, not more.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(rates.take(a, t1), Ok(()));
        assert!(rates.take(a, t1).is_err());
        // Long idle refills to the burst only.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(rates.take(a, t2), Ok(()));
        }
        assert!(rates.take(a, t2).is_err());
        // Another client has its own bucket.
        assert_eq!(rates.take(p.client(ip("10.0.0.2")), t2), Ok(()));
        let mut off = Rates::new(100, 0.0, 1);
        assert!((0..1000).all(|_| off.take(a, t0).is_ok()));
    }

    #[test]
    fn a_flood_of_clients_keeps_the_table_bounded() {
        let p = Prefixes { v4: 32, v6: 128 };
        let t0 = Instant::now();
        let mut rates = Rates::new(64, 1.0, 2);
        let quiet = p.client(ip("192.0.2.1"));
        assert!(rates.take(quiet, t0).is_ok() && rates.take(quiet, t0).is_ok());
        assert!(rates.take(quiet, t0).is_err());
        // Ten thousand others, each once: the table stays at its size.
        for i in 0..10_000u32 {
            let other = p.client(IpAddr::V6((0x2001_0db8_u128 << 96 | u128::from(i)).into()));
            let _ = rates.take(other, t0 + Duration::from_micros(u64::from(i) + 1));
            assert!(rates.clients() <= 64);
        }
        // A client that stopped asking was forgotten first: it starts
        // again with a full bucket (what its own refill would have given
        // it in 2 s anyway).
        assert!(rates.take(quiet, t0 + Duration::from_millis(20)).is_ok());
        // A refilled bucket goes before any other.
        let mut rates = Rates::new(2, 1.0, 1);
        let (a, b, c) = (
            p.client(ip("10.0.0.1")),
            p.client(ip("10.0.0.2")),
            p.client(ip("10.0.0.3")),
        );
        assert!(rates.take(a, t0).is_ok());
        assert!(rates.take(b, t0 + Duration::from_millis(500)).is_ok());
        // At 1.2 s a has refilled (1 token a second), b not: a goes.
        assert!(rates.take(c, t0 + Duration::from_millis(1200)).is_ok());
        assert!(
            rates.take(b, t0 + Duration::from_millis(1300)).is_err(),
            "b was kept, empty"
        );
        assert!(Rates::bytes_for(16384) >= 16384 * 32);
    }

    #[test]
    fn a_client_that_keeps_asking_keeps_its_place_through_a_flood() {
        let p = Prefixes { v4: 32, v6: 64 };
        let mut rates = Rates::new(64, 0.01, 1);
        let mut now = Instant::now();
        let hog = p.client("127.0.0.9".parse().unwrap());
        assert!(rates.take(hog, now).is_ok());
        assert!(rates.take(hog, now).is_err());
        for i in 0..1500u32 {
            now += Duration::from_micros(300);
            let source = IpAddr::V4(std::net::Ipv4Addr::new(
                127,
                10,
                (i / 250) as u8,
                (i % 250 + 1) as u8,
            ));
            assert!(rates.take(p.client(source), now).is_ok(), "{i}");
            if i % 50 == 0 {
                assert!(rates.take(hog, now).is_err(), "after {i}");
            }
        }
    }
}
