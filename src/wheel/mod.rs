//! A hashed, two-level timer wheel holding every connection's deadline.
//!
//! Why a wheel: a server with 10,000 keep-alive connections has 10,000
//! deadlines, and nearly every one is pushed back (a request arrives)
//! before it fires. A heap pays O(log n) for each push-back; a timerfd per
//! connection pays a syscall. A wheel pays O(1) and, with the lazy re-check
//! below, usually nothing at all (Varghese & Lauck 1987; Linux's
//! `kernel/time/timer.c`; tokio's time driver).
//!
//! # Shape
//! Time is cut into ticks (the `tick` given to [`TimerWheel::with_capacity`];
//! 100 ms in the server, [`crate::reactor::TIMER_TICK`]).
//! Level 0 has 256 slots, one per tick of the current *revolution* (256
//! ticks). Level 1 has 256 slots, one per revolution, for deadlines beyond
//! the current one; when a revolution begins, its level-1 slot is
//! *cascaded*: each entry moves down to its level-0 slot. Deadlines further
//! than 255 revolutions (more than 1.8 hours at 100 ms) wait in the
//! farthest level-1 slot and are re-placed each time it cascades.
//!
//! Each key (a connection's slab index) has at most one timer. Schedule,
//! cancel and reset are O(1): a slot is a `Vec` of keys, removal is a
//! `swap_remove` that patches the moved key's index, and a bitmap of
//! occupied slots finds the next due tick in a few word operations.
//!
//! # Cheap reset
//! Pushing a deadline *later* only records the new due tick; the entry
//! stays where it is. When its slot comes up, the entry sees it is not due
//! yet and is re-placed. So a keep-alive connection that serves a request
//! every second moves in the wheel at most once per timeout, not once per
//! request. Pulling a deadline *earlier* moves the entry at once.
//!
//! # Accuracy
//! A deadline is rounded *up* to a tick and fires when [`TimerWheel::advance`]
//! is called at or after that tick's instant: never early, and at most one
//! tick late plus however late the reactor calls `advance`.
//!
//! # Wakeups
//! [`TimerWheel::timeout`] is the time until the next tick that holds an
//! entry (or the next revolution with a level-1 entry), so an idle server
//! with no timers sleeps in `epoll_wait` indefinitely. The wakeups that
//! remain: a lazily extended entry wakes the reactor once at its old due
//! tick to be re-placed, and a far entry wakes it once per revolution it
//! crosses in the farthest slot.
//!
//! # Panics
//! [`TimerWheel::new`] asserts a non-zero tick (the server's is the
//! constant [`crate::reactor::TIMER_TICK`]). Every index is a slot number
//! masked to `0..256`, or a key the wheel stored itself.

use std::time::{Duration, Instant};

const SLOT_BITS: u32 = 8;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;

/// Keys every slot has room for from the start. A slot's `Vec` would
/// otherwise allocate the first time a deadline lands in it, and a server
/// in its steady state would keep allocating for a whole revolution
/// (25.6 s for level 0, hours for level 1) as its deadlines reach slots
/// for the first time. A slot that needs more grows once and keeps it.
const SLOT_CAPACITY: usize = 4;

/// What the preallocated slots of one wheel take (two levels).
pub const PREALLOCATED_BYTES: usize = 2 * SLOTS * SLOT_CAPACITY * std::mem::size_of::<usize>();

#[derive(Debug, Clone, Copy)]
struct Timer {
    level: u8,
    slot: u8,
    /// Position in the slot's `Vec`.
    index: u32,
    /// The tick this timer is really due: may be later than its slot.
    due: u64,
    /// The tick (level 0) or revolution (level 1) whose slot holds it.
    placed: u64,
}

#[derive(Debug)]
struct Level {
    slots: Vec<Vec<usize>>,
    occupied: [u64; SLOTS / 64],
}

impl Level {
    fn new() -> Level {
        Level {
            slots: (0..SLOTS)
                .map(|_| Vec::with_capacity(SLOT_CAPACITY))
                .collect(),
            occupied: [0; SLOTS / 64],
        }
    }

    fn mark(&mut self, slot: usize, on: bool) {
        let (word, bit) = (slot / 64, slot % 64);
        if on {
            self.occupied[word] |= 1 << bit;
        } else {
            self.occupied[word] &= !(1 << bit);
        }
    }

    /// The first occupied slot at `from` or after it (no wrap-around).
    fn next_occupied(&self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        let mut bits = self.occupied[word] & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                return Some(word * 64 + bits.trailing_zeros() as usize);
            }
            word += 1;
            if word == self.occupied.len() {
                return None;
            }
            bits = self.occupied[word];
        }
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct TimerWheel {
    origin: Instant,
    tick: Duration,
    /// The next tick to process; every tick before it has been processed.
    now_tick: u64,
    levels: [Level; 2],
    timers: Vec<Option<Timer>>,
    len: usize,
}

impl TimerWheel {
    pub fn new(origin: Instant, tick: Duration) -> TimerWheel {
        assert!(!tick.is_zero(), "a timer wheel needs a non-zero tick");
        TimerWheel {
            origin,
            tick,
            now_tick: 0,
            levels: [Level::new(), Level::new()],
            timers: Vec::new(),
            len: 0,
        }
    }

    /// A wheel whose key table is reserved for `keys` keys up front.
    pub fn with_capacity(origin: Instant, tick: Duration, keys: usize) -> TimerWheel {
        let mut wheel = TimerWheel::new(origin, tick);
        wheel.timers.reserve_exact(keys);
        wheel
    }

    /// Live timers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The instant `key`'s timer is due (rounded up to its tick).
    pub fn deadline(&self, key: usize) -> Option<Instant> {
        let timer = self.timers.get(key).copied().flatten()?;
        Some(self.instant_of(timer.due))
    }

    /// Sets `key`'s deadline, replacing the one it had, earlier or later. O(1).
    pub fn schedule(&mut self, key: usize, deadline: Instant) {
        let due = self.tick_ceil(deadline).max(self.now_tick);
        if key >= self.timers.len() {
            self.timers.resize(key + 1, None);
        }
        match self.timers[key] {
            // Later than where it sits: just note it (see "Cheap reset").
            Some(mut timer) if due >= self.slot_tick(&timer) => {
                timer.due = due;
                self.timers[key] = Some(timer);
            }
            Some(_) => {
                self.unlink(key);
                self.place(key, due);
            }
            None => {
                self.len += 1;
                self.place(key, due);
            }
        }
    }

    /// Removes `key`'s timer, if any. O(1).
    pub fn cancel(&mut self, key: usize) {
        if self.timers.get(key).is_some_and(Option::is_some) {
            self.unlink(key);
            self.timers[key] = None;
            self.len -= 1;
        }
    }

    /// Live timers due within `near`, within `far`, and later, counted
    /// from `now` by their true deadlines (a walk over every key: for the
    /// status page, not the hot path).
    pub fn due_within(&self, now: Instant, near: Duration, far: Duration) -> [usize; 3] {
        let (near, far) = (self.tick_ceil(now + near), self.tick_ceil(now + far));
        let mut counts = [0; 3];
        for timer in self.timers.iter().flatten() {
            let bucket = if timer.due <= near {
                0
            } else if timer.due <= far {
                1
            } else {
                2
            };
            counts[bucket] += 1;
        }
        counts
    }

    /// How long the reactor may sleep before the next tick that has work;
    /// `None` when no timer is live.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        let tick = self.next_work_tick()?;
        Some(self.instant_of(tick).saturating_duration_since(now))
    }

    /// Processes every tick up to `now` and appends the keys whose
    /// deadlines have passed to `expired`. Their timers are removed.
    ///
    /// Each slot's keys are taken whole before any is handled: handling
    /// one may place another timer (a push-later re-placed, a cascade), and
    /// the slot being processed must not grow under the loop.
    pub fn advance(&mut self, now: Instant, expired: &mut Vec<usize>) {
        let Some(last) = self.tick_floor(now) else {
            return;
        };
        while self.now_tick <= last {
            let Some(next) = self.next_work_tick() else {
                self.now_tick = last + 1;
                return;
            };
            if next > last {
                self.now_tick = last + 1;
                return;
            }
            self.now_tick = next;
            if next & SLOT_MASK == 0 {
                self.cascade(next >> SLOT_BITS);
            }
            self.expire_slot(next, expired);
            self.now_tick = next + 1;
        }
    }

    /// The next tick at which `advance` has something to do: an occupied
    /// level-0 slot in this revolution, else the start of the next
    /// revolution whose level-1 slot is occupied.
    fn next_work_tick(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let revolution = self.now_tick >> SLOT_BITS;
        let base = revolution << SLOT_BITS;
        // Standing on a revolution's first tick, not yet processed: its
        // level-1 slot still waits to be cascaded.
        let this_rev_slot = (revolution & SLOT_MASK) as usize;
        if self.now_tick == base && !self.levels[1].slots[this_rev_slot].is_empty() {
            return Some(base);
        }
        if let Some(slot) = self.levels[0].next_occupied((self.now_tick & SLOT_MASK) as usize) {
            return Some(base + slot as u64);
        }
        // Level-1 slots are searched from the next revolution onwards,
        // wrapping; 255 revolutions are reachable.
        let start = ((revolution + 1) & SLOT_MASK) as usize;
        let level1 = &self.levels[1];
        let slot = level1
            .next_occupied(start)
            .or_else(|| level1.next_occupied(0))?;
        let distance = (slot as u64).wrapping_sub(start as u64) & SLOT_MASK;
        Some((revolution + 1 + distance) << SLOT_BITS)
    }

    fn cascade(&mut self, revolution: u64) {
        let slot = (revolution & SLOT_MASK) as usize;
        let keys = std::mem::take(&mut self.levels[1].slots[slot]);
        self.levels[1].mark(slot, false);
        for &key in &keys {
            if let Some(timer) = self.timers[key] {
                self.place(key, timer.due);
            }
        }
        self.recycle(1, slot, keys);
    }

    fn expire_slot(&mut self, tick: u64, expired: &mut Vec<usize>) {
        let slot = (tick & SLOT_MASK) as usize;
        let keys = std::mem::take(&mut self.levels[0].slots[slot]);
        self.levels[0].mark(slot, false);
        for &key in &keys {
            let Some(timer) = self.timers[key] else {
                continue;
            };
            // A timer sits in a level-0 slot no later than it is due (lazy
            // push-later only ever moves `due` forward).
            debug_assert!(
                timer.due >= timer.placed,
                "timer {key} placed after its due tick"
            );
            if timer.due > tick {
                self.place(key, timer.due);
            } else {
                self.timers[key] = None;
                self.len -= 1;
                expired.push(key);
            }
        }
        self.recycle(0, slot, keys);
    }

    /// Gives an emptied slot its `Vec` back, keeping the capacity, unless
    /// something was placed there meanwhile.
    fn recycle(&mut self, level: usize, slot: usize, mut keys: Vec<usize>) {
        let current = &mut self.levels[level].slots[slot];
        if current.is_empty() {
            keys.clear();
            *current = keys;
        }
    }

    /// Puts `key` in the slot for `due`. The caller has unlinked it.
    fn place(&mut self, key: usize, due: u64) {
        let due = due.max(self.now_tick);
        let now_rev = self.now_tick >> SLOT_BITS;
        let due_rev = due >> SLOT_BITS;
        let (level, placed) = if due_rev == now_rev {
            (0usize, due)
        } else {
            // Beyond 255 revolutions: park in the farthest slot.
            (1usize, due_rev.min(now_rev + SLOT_MASK))
        };
        // Nothing is placed in a tick already processed: it would never
        // fire (the invariant tokio's wheel checks as
        // `no_expirations_before`).
        debug_assert!(
            level == 1 || placed >= self.now_tick,
            "timer {key} placed in processed tick {placed} (now {})",
            self.now_tick
        );
        let slot = (placed & SLOT_MASK) as usize;
        let keys = &mut self.levels[level].slots[slot];
        keys.push(key);
        let index = (keys.len() - 1) as u32;
        self.levels[level].mark(slot, true);
        self.timers[key] = Some(Timer {
            level: level as u8,
            slot: slot as u8,
            index,
            due,
            placed,
        });
    }

    /// Takes `key` out of its slot, leaving `timers[key]` for the caller.
    fn unlink(&mut self, key: usize) {
        let Some(timer) = self.timers[key] else {
            return;
        };
        let level = &mut self.levels[timer.level as usize];
        let keys = &mut level.slots[timer.slot as usize];
        let index = timer.index as usize;
        debug_assert_eq!(
            keys.get(index),
            Some(&key),
            "timer {key}'s slot index is stale"
        );
        keys.swap_remove(index);
        if let Some(t) = keys
            .get(index)
            .and_then(|&moved| self.timers[moved].as_mut())
        {
            t.index = index as u32;
        }
        if keys.is_empty() {
            level.mark(timer.slot as usize, false);
        }
    }

    /// The first tick at which the slot holding `timer` is processed.
    fn slot_tick(&self, timer: &Timer) -> u64 {
        if timer.level == 0 {
            timer.placed
        } else {
            timer.placed << SLOT_BITS
        }
    }

    fn tick_ceil(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        let tick = self.tick.as_nanos();
        nanos.div_ceil(tick).min(u128::from(u64::MAX / 2)) as u64
    }

    fn tick_floor(&self, at: Instant) -> Option<u64> {
        let nanos = at.checked_duration_since(self.origin)?.as_nanos();
        Some((nanos / self.tick.as_nanos()).min(u128::from(u64::MAX / 2)) as u64)
    }

    fn instant_of(&self, tick: u64) -> Instant {
        self.origin + self.tick * u32::try_from(tick).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests;
