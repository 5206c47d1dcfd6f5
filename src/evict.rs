//! Who goes first when the fd budget is full.
//!
//! Five queues, each in the order connections entered it, as intrusive
//! doubly-linked lists over slab keys (O(1) to join, leave, and pop the
//! oldest; no allocation after the first growth). The victim is the head
//! of the first queue, in this order, that has one to give:
//!
//! 1. [`Class::Idle`], idle for at least [`IDLE_GRACE`]: keep-alive
//!    connections between requests, longest idle first. Cheapest to lose:
//!    RFC 9112 §9.6 lets either side close an idle connection, and the
//!    client reconnects transparently.
//! 2. [`Class::Lingering`], lingering for at least [`IDLE_GRACE`]: the
//!    response is out, the client had time to read it; only unread input
//!    is left to drain.
//! 3. [`Class::Fresh`]: accepted, no byte received yet, oldest first.
//! 4. [`Class::PartialHead`]: an unfinished request head (or body), oldest
//!    first: slowloris lives here.
//! 5. [`Class::Stalled`]: a response that has made no write progress for
//!    the stall grace (`--evict-stalled-after`): the client is not reading.
//!    The one stalled longest goes first.
//!
//! 6. [`Class::Idle`] younger than [`IDLE_GRACE`], but only for a newcomer
//!    that has already waited that long (admission blocked for
//!    [`IDLE_GRACE`]): a client that got its answer a moment ago is about
//!    to ask again and is worth more than a newcomer that might be one
//!    more storm connection; yet clients that keep every slot busy with a
//!    request a second must not lock newcomers out for ever (nginx closes
//!    idle keep-alive connections of any age when it runs out).
//!
//! Within a class, the reactor may prefer a victim
//! ([`EvictionQueues::victim_preferring`]): the connections of the
//! client holding the most slots go before older ones of other clients.
//!
//! Never evicted: a response making write progress (it is being read).
//! When nothing may go, the reactor stops accepting until
//! [`EvictionQueues::next_eligible`] or a close.
//!
//! A storm that renews its connections as fast as they are closed cannot
//! starve anyone with this order: each of its connections lands in the
//! queue of what it does (fresh, partial head, stalled) and is shed in
//! turn, while a real client's connection is read at accept, answered at
//! once, and then sits young-idle, where nothing reaches it.

use std::time::{Duration, Instant};

/// How far into a queue [`EvictionQueues::victim_preferring`] looks for
/// a preferred victim: a bound on the work of one eviction.
pub const PREFER_SCAN: usize = 64;

/// An idle connection younger than this is never evicted; lingering
/// connections become evictable after it too.
pub const IDLE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Idle,
    Fresh,
    PartialHead,
    Stalled,
    Lingering,
}

impl Class {
    /// Every class, in counter order (`Stats::evictions`).
    pub const ALL: [Class; CLASSES] = [
        Class::Idle,
        Class::Fresh,
        Class::PartialHead,
        Class::Stalled,
        Class::Lingering,
    ];

    /// The name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Idle => "idle",
            Class::Fresh => "fresh",
            Class::PartialHead => "partial_head",
            Class::Stalled => "stalled",
            Class::Lingering => "lingering",
        }
    }
}

/// The number of eviction classes.
pub const CLASSES: usize = 5;
const NIL: usize = usize::MAX;

#[derive(Debug, Clone, Copy)]
struct Link {
    class: Option<Class>,
    prev: usize,
    next: usize,
    /// When it joined its queue (the order of the queue).
    since: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Ends {
    head: usize,
    tail: usize,
    len: usize,
}

#[derive(Debug)]
pub struct EvictionQueues {
    links: Vec<Link>,
    queues: [Ends; CLASSES],
    /// A response without write progress this long is evictable.
    stall_grace: Duration,
}

impl EvictionQueues {
    pub fn new(stall_grace: Duration) -> EvictionQueues {
        EvictionQueues {
            links: Vec::new(),
            queues: [Ends {
                head: NIL,
                tail: NIL,
                len: 0,
            }; CLASSES],
            stall_grace,
        }
    }

    pub fn with_capacity(keys: usize, stall_grace: Duration) -> EvictionQueues {
        let mut queues = EvictionQueues::new(stall_grace);
        queues.links.reserve_exact(keys);
        queues
    }

    /// A reload changed `--evict-stalled-after`.
    pub fn set_stall_grace(&mut self, stall_grace: Duration) {
        self.stall_grace = stall_grace;
    }

    pub fn len(&self, class: Class) -> usize {
        self.queues[class as usize].len
    }

    /// Puts `key` in `class` (or in none), entered at `since`. A key that
    /// is already there with the same `since` keeps its place.
    pub fn set(&mut self, key: usize, class: Option<Class>, since: Instant) {
        if key >= self.links.len() {
            self.links.resize(
                key + 1,
                Link {
                    class: None,
                    prev: NIL,
                    next: NIL,
                    since,
                },
            );
        }
        let link = self.links[key];
        if link.class == class && (class.is_none() || link.since == since) {
            return;
        }
        self.unlink(key);
        if let Some(class) = class {
            self.push_back(key, class, since);
        }
    }

    pub fn remove(&mut self, key: usize) {
        if key < self.links.len() {
            self.unlink(key);
        }
    }

    /// The connection to evict, if any (see the module docs), for a
    /// newcomer kept waiting since `waiting_since` (`None`: it is the
    /// first try).
    pub fn victim(&self, now: Instant, waiting_since: Option<Instant>) -> Option<(usize, Class)> {
        let waited = waiting_since.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let aged = |class: Class, grace: Duration| {
            let key = self.queues[class as usize].head;
            (key != NIL && now.saturating_duration_since(self.links[key].since) >= grace)
                .then_some((key, class))
        };
        aged(Class::Idle, IDLE_GRACE)
            .or_else(|| aged(Class::Lingering, IDLE_GRACE))
            .or_else(|| aged(Class::Fresh, Duration::ZERO))
            .or_else(|| aged(Class::PartialHead, Duration::ZERO))
            .or_else(|| aged(Class::Stalled, self.stall_grace))
            .or_else(|| {
                let key = self.queues[Class::Idle as usize].head;
                (key != NIL && waited >= IDLE_GRACE).then_some((key, Class::Idle))
            })
    }

    /// The victim [`EvictionQueues::victim`] would give, or, among the
    /// first [`PREFER_SCAN`] of its queue that are as evictable, the first
    /// that `prefer` picks (the connections of the client holding the
    /// most): one address holding many slots loses them before anyone
    /// else loses one of the same class.
    pub fn victim_preferring(
        &self,
        now: Instant,
        waiting_since: Option<Instant>,
        prefer: impl Fn(usize) -> bool,
    ) -> Option<(usize, Class)> {
        let (first, class) = self.victim(now, waiting_since)?;
        let grace = match class {
            Class::Idle if now.saturating_duration_since(self.links[first].since) < IDLE_GRACE => {
                Duration::ZERO
            }
            Class::Idle | Class::Lingering => IDLE_GRACE,
            Class::Fresh | Class::PartialHead => Duration::ZERO,
            Class::Stalled => self.stall_grace,
        };
        let mut key = first;
        for _ in 0..PREFER_SCAN {
            if key == NIL || now.saturating_duration_since(self.links[key].since) < grace {
                break;
            }
            if prefer(key) {
                return Some((key, class));
            }
            key = self.links[key].next;
        }
        Some((first, class))
    }

    /// When there is no victim now: the earliest instant one of the queued
    /// connections becomes evictable, by its age or by how long the
    /// newcomer has waited (since `waiting_since`).
    pub fn next_eligible(&self, waiting_since: Option<Instant>) -> Option<Instant> {
        let young_idle = (self.queues[Class::Idle as usize].head != NIL)
            .then_some(waiting_since)
            .flatten()
            .map(|t| t + IDLE_GRACE);
        [
            (Class::Idle, IDLE_GRACE),
            (Class::Lingering, IDLE_GRACE),
            (Class::Stalled, self.stall_grace),
        ]
        .into_iter()
        .filter_map(|(class, grace)| {
            let key = self.queues[class as usize].head;
            (key != NIL).then(|| self.links[key].since + grace)
        })
        .chain(young_idle)
        .min()
    }

    fn push_back(&mut self, key: usize, class: Class, since: Instant) {
        let q = &mut self.queues[class as usize];
        self.links[key] = Link {
            class: Some(class),
            prev: q.tail,
            next: NIL,
            since,
        };
        if q.tail == NIL {
            q.head = key;
        } else {
            self.links[q.tail].next = key;
        }
        q.tail = key;
        q.len += 1;
    }

    fn unlink(&mut self, key: usize) {
        let Link {
            class, prev, next, ..
        } = self.links[key];
        let Some(class) = class else {
            return;
        };
        let q = &mut self.queues[class as usize];
        if prev == NIL {
            q.head = next;
        } else {
            self.links[prev].next = next;
        }
        if next == NIL {
            q.tail = prev;
        } else {
            self.links[next].prev = prev;
        }
        q.len -= 1;
        self.links[key].class = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(2);

    #[test]
    fn order_and_grace() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut q = EvictionQueues::new(STALL);
        q.set(1, Some(Class::PartialHead), t0);
        q.set(2, Some(Class::Fresh), ms(10));
        q.set(3, Some(Class::Fresh), ms(20));
        q.set(4, Some(Class::Idle), ms(500));
        q.set(5, Some(Class::Stalled), ms(40));
        // The idle one is too young: the oldest fresh goes first.
        assert_eq!(q.victim(ms(100), None), Some((2, Class::Fresh)));
        // Once idle past the grace, idle goes first.
        assert_eq!(q.victim(ms(2000), None), Some((4, Class::Idle)));
        q.remove(2);
        q.remove(3);
        assert_eq!(q.victim(ms(100), None), Some((1, Class::PartialHead)));
        q.remove(1);
        // Only a young idle and a stall younger than its grace are left:
        // nobody may go, until the first of them comes of age.
        assert_eq!(q.victim(ms(600), None), None);
        assert_eq!(q.next_eligible(None), Some(ms(500) + IDLE_GRACE));
        // A newcomer that has waited a whole grace takes the young idle
        // connection's place (idle for 550 ms only).
        let waiting = Some(ms(50));
        assert_eq!(q.next_eligible(waiting), Some(ms(50) + IDLE_GRACE));
        assert_eq!(q.victim(ms(900), waiting), None);
        assert_eq!(q.victim(ms(1050), waiting), Some((4, Class::Idle)));
        q.remove(4);
        assert_eq!(q.next_eligible(waiting), Some(ms(40) + STALL));
        assert_eq!(
            q.victim(ms(40) + STALL - Duration::from_millis(1), None),
            None
        );
        assert_eq!(q.victim(ms(40) + STALL, None), Some((5, Class::Stalled)));
        q.set(5, None, t0);
        assert_eq!(q.victim(t0, None), None);
        assert_eq!(q.next_eligible(waiting), None);
    }

    #[test]
    fn a_stalled_response_goes_only_after_every_other_class() {
        let t0 = Instant::now();
        let late = t0 + Duration::from_secs(60);
        let mut q = EvictionQueues::new(STALL);
        q.set(7, Some(Class::Stalled), t0);
        q.set(8, Some(Class::Stalled), t0 + Duration::from_secs(1));
        q.set(1, Some(Class::PartialHead), late);
        q.set(2, Some(Class::Fresh), late);
        q.set(3, Some(Class::Lingering), t0);
        q.set(4, Some(Class::Idle), t0);
        let mut order = Vec::new();
        while let Some((key, class)) = q.victim(late, None) {
            order.push((key, class));
            q.remove(key);
        }
        assert_eq!(
            order,
            [
                (4, Class::Idle),
                (3, Class::Lingering),
                (2, Class::Fresh),
                (1, Class::PartialHead),
                (7, Class::Stalled),
                (8, Class::Stalled),
            ]
        );
        // Write progress moves a response to the back of the queue: the
        // one that stalled longest goes first, never one still moving.
        q.set(7, Some(Class::Stalled), t0);
        q.set(8, Some(Class::Stalled), t0 + Duration::from_secs(1));
        q.set(7, Some(Class::Stalled), t0 + Duration::from_secs(3));
        let at = t0 + Duration::from_secs(4);
        assert_eq!(q.victim(at, None), Some((8, Class::Stalled)));
        q.remove(8);
        assert_eq!(q.victim(at, None), None, "7 made progress a second ago");
    }

    #[test]
    fn class_names_are_the_exported_labels() {
        let names: Vec<&str> = Class::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            ["idle", "fresh", "partial_head", "stalled", "lingering"]
        );
        for (i, class) in Class::ALL.iter().enumerate() {
            assert_eq!(*class as usize, i, "counter order");
        }
    }

    #[test]
    fn removing_a_key_never_queued_is_harmless() {
        let t0 = Instant::now();
        let mut q = EvictionQueues::new(STALL);
        q.remove(0);
        q.remove(7);
        q.set(3, Some(Class::Fresh), t0);
        q.remove(4); // one past the table
        q.remove(3);
        q.remove(3);
        assert_eq!(q.len(Class::Fresh), 0);
        assert_eq!(q.victim(t0, None), None);
    }

    #[test]
    fn re_entering_moves_to_the_back() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut q = EvictionQueues::new(STALL);
        for key in 0..4 {
            q.set(
                key,
                Some(Class::Idle),
                t0 + Duration::from_millis(key as u64),
            );
        }
        // Key 0 served a request and went idle again: it is now the newest.
        q.set(0, Some(Class::Idle), later);
        assert_eq!(q.victim(later, None), Some((1, Class::Idle)));
        // Same class and same time: nothing moves.
        q.set(1, Some(Class::Idle), t0 + Duration::from_millis(1));
        assert_eq!(q.victim(later, None), Some((1, Class::Idle)));
        assert_eq!(q.len(Class::Idle), 4);
        for key in [1, 2, 3] {
            q.remove(key);
        }
        assert_eq!(
            q.victim(later + Duration::from_secs(5), None),
            Some((0, Class::Idle))
        );
        q.remove(0);
        assert_eq!(q.len(Class::Idle), 0);
        assert_eq!(q.victim(later, None), None);
    }
}
