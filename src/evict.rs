//! Who goes first when the fd budget is full.
//!
//! Three queues, each in the order connections entered it, as intrusive
//! doubly-linked lists over slab keys (O(1) to join, leave, and pop the
//! oldest; no allocation after the first growth):
//!
//! - [`Class::Idle`]: keep-alive connections between requests, by when
//!   they went idle. Cheapest to lose: the client reconnects transparently.
//! - [`Class::Fresh`]: accepted, no byte received yet, by accept time.
//! - [`Class::PartialHead`]: an unfinished request head (or body), by when
//!   it began: slowloris lives here.
//!
//! Connections writing a response or lingering are in no queue: they are
//! never evicted.
//!
//! The victim is the longest-idle connection, *unless* it has been idle for
//! less than [`IDLE_GRACE`]: a client that finished a request a moment ago
//! is about to send the next one, and is worth more than a socket that
//! connected and said nothing. Then the oldest fresh connection goes, then
//! the oldest partial head, and only then a recently idle one.

use std::time::{Duration, Instant};

/// An idle connection younger than this is spared while fresh or
/// slow-head connections remain.
pub const IDLE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Idle,
    Fresh,
    PartialHead,
}

const CLASSES: usize = 3;
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
}

impl Default for EvictionQueues {
    fn default() -> Self {
        EvictionQueues {
            links: Vec::new(),
            queues: [Ends {
                head: NIL,
                tail: NIL,
                len: 0,
            }; CLASSES],
        }
    }
}

impl EvictionQueues {
    pub fn with_capacity(keys: usize) -> EvictionQueues {
        let mut queues = EvictionQueues::default();
        queues.links.reserve_exact(keys);
        queues
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

    /// The connection to evict, if any (see the module docs).
    pub fn victim(&self, now: Instant) -> Option<(usize, Class)> {
        let oldest = |class: Class| {
            let head = self.queues[class as usize].head;
            (head != NIL).then_some((head, class))
        };
        if let Some((key, class)) = oldest(Class::Idle)
            && now.saturating_duration_since(self.links[key].since) >= IDLE_GRACE
        {
            return Some((key, class));
        }
        oldest(Class::Fresh)
            .or_else(|| oldest(Class::PartialHead))
            .or_else(|| oldest(Class::Idle))
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

    #[test]
    fn order_and_grace() {
        let t0 = Instant::now();
        let mut q = EvictionQueues::default();
        q.set(1, Some(Class::PartialHead), t0);
        q.set(2, Some(Class::Fresh), t0 + Duration::from_millis(10));
        q.set(3, Some(Class::Fresh), t0 + Duration::from_millis(20));
        q.set(4, Some(Class::Idle), t0 + Duration::from_millis(30));
        // The idle one is too young: the oldest fresh goes first.
        assert_eq!(
            q.victim(t0 + Duration::from_millis(100)),
            Some((2, Class::Fresh))
        );
        // Once idle past the grace, idle goes first.
        assert_eq!(
            q.victim(t0 + Duration::from_secs(2)),
            Some((4, Class::Idle))
        );
        q.remove(2);
        q.remove(3);
        assert_eq!(
            q.victim(t0 + Duration::from_millis(100)),
            Some((1, Class::PartialHead))
        );
        q.remove(1);
        assert_eq!(
            q.victim(t0 + Duration::from_millis(100)),
            Some((4, Class::Idle))
        );
        q.set(4, None, t0);
        assert_eq!(q.victim(t0), None);
    }

    #[test]
    fn re_entering_moves_to_the_back() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut q = EvictionQueues::default();
        for key in 0..4 {
            q.set(
                key,
                Some(Class::Idle),
                t0 + Duration::from_millis(key as u64),
            );
        }
        // Key 0 served a request and went idle again: it is now the newest.
        q.set(0, Some(Class::Idle), later);
        assert_eq!(q.victim(later), Some((1, Class::Idle)));
        // Same class and same time: nothing moves.
        q.set(1, Some(Class::Idle), t0 + Duration::from_millis(1));
        assert_eq!(q.victim(later), Some((1, Class::Idle)));
        assert_eq!(q.len(Class::Idle), 4);
        for key in [1, 2, 3] {
            q.remove(key);
        }
        assert_eq!(
            q.victim(later + Duration::from_secs(5)),
            Some((0, Class::Idle))
        );
        q.remove(0);
        assert_eq!(q.len(Class::Idle), 0);
        assert_eq!(q.victim(later), None);
    }
}
