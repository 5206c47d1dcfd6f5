use super::*;
use std::collections::BTreeMap;

const TICK: Duration = Duration::from_millis(100);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn fires_at_deadline_never_early() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0, TICK);
    wheel.schedule(7, t0 + ms(250));
    let mut out = Vec::new();
    wheel.advance(t0 + ms(249), &mut out);
    assert!(out.is_empty());
    wheel.advance(t0 + ms(299), &mut out);
    assert!(out.is_empty(), "rounded up to the 300 ms tick");
    wheel.advance(t0 + ms(300), &mut out);
    assert_eq!(out, [7]);
    assert!(wheel.is_empty());
    assert_eq!(wheel.timeout(t0), None);
}

/// Once `advance` has processed a tick, nothing is placed in it again:
/// a deadline already reached is due at the next tick, with or without
/// other timers waiting.
#[test]
fn a_reached_deadline_is_due_at_the_next_tick() {
    let t0 = Instant::now();
    for far_timer in [false, true] {
        let mut wheel = TimerWheel::new(t0, TICK);
        assert!(wheel.is_empty());
        if far_timer {
            wheel.schedule(9, t0 + ms(60_000));
            assert!(!wheel.is_empty());
        }
        let mut out = Vec::new();
        wheel.advance(t0 + ms(1_000), &mut out);
        assert!(out.is_empty());
        wheel.schedule(1, t0 + ms(1_000));
        assert_eq!(
            wheel.deadline(1),
            Some(t0 + ms(1_100)),
            "far timer: {far_timer}"
        );
    }
}

/// A slot emptied by a cancel is no longer a reason to wake up.
#[test]
fn cancelled_timers_leave_no_wakeup() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0, TICK);
    wheel.schedule(1, t0 + ms(500));
    wheel.schedule(2, t0 + ms(5_000));
    assert_eq!(wheel.timeout(t0), Some(ms(500)));
    wheel.cancel(1);
    assert_eq!(wheel.timeout(t0), Some(ms(5_000)));
}

#[test]
fn due_within_counts_true_deadlines() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0, TICK);
    wheel.schedule(1, t0 + ms(500));
    wheel.schedule(2, t0 + ms(300));
    // Pushed later lazily: it still sits in an early slot.
    wheel.schedule(2, t0 + ms(5_000));
    wheel.schedule(3, t0 + ms(60_000));
    assert_eq!(wheel.due_within(t0, ms(1_000), ms(10_000)), [1, 1, 1]);
    wheel.cancel(1);
    assert_eq!(wheel.due_within(t0, ms(1_000), ms(10_000)), [0, 1, 1]);
    wheel.schedule(4, t0 + ms(200));
    wheel.schedule(5, t0 + ms(300));
    wheel.schedule(6, t0 + ms(7_000));
    assert_eq!(wheel.due_within(t0, ms(1_000), ms(10_000)), [2, 2, 1]);
}

#[test]
fn timeout_points_at_next_occupied_tick() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0, TICK);
    wheel.schedule(1, t0 + ms(5_000));
    assert_eq!(wheel.timeout(t0), Some(ms(5_000)));
    // Beyond one revolution (25.6 s): wakes at the cascade.
    let mut wheel = TimerWheel::new(t0, TICK);
    wheel.schedule(1, t0 + ms(60_000));
    assert_eq!(wheel.timeout(t0), Some(ms(51_200)));
    let mut out = Vec::new();
    wheel.advance(t0 + ms(51_200), &mut out);
    assert!(out.is_empty());
    assert_eq!(wheel.timeout(t0 + ms(51_200)), Some(ms(8_800)));
    wheel.advance(t0 + ms(60_000), &mut out);
    assert_eq!(out, [1]);
}

#[test]
fn reset_later_is_lazy_and_exact() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0, TICK);
    wheel.schedule(3, t0 + ms(1_000));
    wheel.schedule(3, t0 + ms(2_000));
    assert_eq!(wheel.deadline(3), Some(t0 + ms(2_000)));
    let mut out = Vec::new();
    wheel.advance(t0 + ms(1_500), &mut out);
    assert!(out.is_empty(), "re-placed, not fired");
    wheel.advance(t0 + ms(2_000), &mut out);
    assert_eq!(out, [3]);
}

#[test]
fn reset_earlier_and_cancel() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0, TICK);
    for key in 0..10 {
        wheel.schedule(key, t0 + ms(10_000));
    }
    wheel.schedule(4, t0 + ms(100));
    wheel.cancel(5);
    wheel.cancel(5);
    assert_eq!(wheel.len(), 9);
    let mut out = Vec::new();
    wheel.advance(t0 + ms(100), &mut out);
    assert_eq!(out, [4]);
    wheel.advance(t0 + ms(10_000), &mut out);
    out.sort_unstable();
    assert_eq!(out, [0, 1, 2, 3, 4, 6, 7, 8, 9]);
}

#[test]
fn very_far_deadline() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0, TICK);
    let far = ms(3 * 3600 * 1000);
    wheel.schedule(9, t0 + far);
    let mut out = Vec::new();
    let mut now = t0;
    let mut wakeups = 0;
    while out.is_empty() {
        now += wheel.timeout(now).expect("a live timer");
        wheel.advance(now, &mut out);
        wakeups += 1;
    }
    assert_eq!(now, t0 + far);
    assert!(wakeups < 500, "{wakeups} wakeups for one timer");
}

/// Random schedules, resets, cancels and advances against a BTreeMap
/// model: the wheel fires exactly the keys whose deadline has passed,
/// at the first `advance` at or after their tick.
#[test]
fn matches_a_simple_model() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0, TICK);
    let mut model: BTreeMap<usize, u64> = BTreeMap::new(); // key -> due tick
    let mut now_ms = 0u64;
    let mut out = Vec::new();
    for _ in 0..200_000 {
        match rand(10) {
            0..=5 => {
                let key = rand(500) as usize;
                // Mostly near, sometimes beyond a revolution or two.
                let delay = match rand(20) {
                    0 => rand(40 * 60 * 1000),
                    1..=3 => rand(120_000),
                    _ => rand(10_000),
                };
                let at = now_ms + delay;
                wheel.schedule(key, t0 + ms(at));
                model.insert(key, at.div_ceil(100));
            }
            6 => {
                let key = rand(500) as usize;
                wheel.cancel(key);
                model.remove(&key);
            }
            _ => {
                now_ms += match rand(50) {
                    0 => rand(30 * 60 * 1000),
                    _ => rand(400),
                };
                out.clear();
                wheel.advance(t0 + ms(now_ms), &mut out);
                out.sort_unstable();
                let now_tick = now_ms / 100;
                let due: Vec<usize> = model
                    .iter()
                    .filter(|&(_, &t)| t <= now_tick)
                    .map(|(&k, _)| k)
                    .collect();
                assert_eq!(out, due, "at {now_ms} ms");
                for k in &due {
                    model.remove(k);
                }
                // The wheel never asks to sleep past the next deadline.
                if let Some(next) = model.values().min() {
                    let sleep = wheel.timeout(t0 + ms(now_ms)).expect("live timers");
                    assert!(t0 + ms(now_ms) + sleep <= t0 + ms(next * 100));
                }
            }
        }
        assert_eq!(wheel.len(), model.len());
    }
}
