//! The timer wheel with 100,000 live timers: schedule them, reset each
//! one later (as keep-alive activity does, and earlier, as a phase change
//! can), then let them all expire. Run with `cargo bench --bench wheel`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use holdline::wheel::TimerWheel;

const TIMERS: usize = 100_000;

fn report(name: &str, ops: usize, start: Instant) {
    let per = start.elapsed().as_nanos() as f64 / ops as f64;
    println!("{name:<46} {per:>8.1} ns/op ({ops} ops)");
}

fn main() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0, Duration::from_millis(100));
    // Keep-alive-like deadlines: 5 s plus jitter.
    let deadline =
        |key: usize, base_ms: u64| t0 + Duration::from_millis(base_ms + (key as u64 * 7919) % 1000);

    let start = Instant::now();
    for key in 0..TIMERS {
        wheel.schedule(key, deadline(key, 5_000));
    }
    report("schedule (100k live)", TIMERS, start);

    let rounds = 10;
    let start = Instant::now();
    for round in 0..rounds {
        for key in 0..TIMERS {
            wheel.schedule(key, deadline(key, 5_000 + round * 300));
        }
    }
    report(
        "reset later (lazy, 100k live)",
        TIMERS * rounds as usize,
        start,
    );

    let start = Instant::now();
    for key in 0..TIMERS {
        wheel.schedule(key, deadline(key, 1_000));
    }
    report("reset earlier (moves, 100k live)", TIMERS, start);

    let start = Instant::now();
    for key in (0..TIMERS).step_by(2) {
        wheel.cancel(key);
    }
    report("cancel (half of them)", TIMERS / 2, start);
    for key in (0..TIMERS).step_by(2) {
        wheel.schedule(key, deadline(key, 30_000));
    }

    // Expire everything, walking the clock as the reactor would: sleep
    // to the next due tick, advance.
    let mut expired = Vec::with_capacity(TIMERS);
    let mut now = t0;
    let mut wakeups = 0usize;
    let start = Instant::now();
    while !wheel.is_empty() {
        now += wheel.timeout(now).unwrap_or(Duration::ZERO);
        wheel.advance(now, &mut expired);
        wakeups += 1;
    }
    report("expire (all 100k, incl. lazy re-placement)", TIMERS, start);
    println!(
        "wakeups to expire 100k timers: {wakeups}; expired {}",
        black_box(expired.len())
    );
}
