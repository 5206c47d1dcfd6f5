//! Containing a panic to what caused it.
//!
//! One process, one thread per worker: a panic that unwinds out of a
//! worker would take every connection with it. [`guarded`] runs one unit
//! of work (driving one connection, one compression job, one buffer of
//! log lines) and turns a panic inside it into a value, with the panic's
//! message, where it happened and, the first time that place panics, a
//! backtrace; the caller then throws that unit away (closes the
//! connection as `internal_error`, drops the job) and goes on. A panic
//! anywhere else still ends the thread, and a worker that ends that way
//! ends the process with a non-zero status (see `reactor::run_workers`).
//!
//! Unwinding through a connection's state leaves that state half-changed,
//! which is why the connection is closed, never driven again. What the
//! reactor shares with it (the slab, the wheel, the eviction queues, the
//! gauges, the fd tally) is updated by the reactor only after a drive
//! returns, so a contained panic leaves none of it half-done.
//!
//! The default panic hook's report to stderr is replaced, inside a guard
//! only, by the caller's one log line.
//!
//! # What is left that could panic
//!
//! The guard is the second line; the first is that nothing a client, a
//! reload, a file or the OS controls reaches a panic. Outside tests and
//! `fuzzing`, the library has no `unwrap`, `expect` or `unreachable!`.
//! What remains, and why none of it can fire from outside:
//!
//! - `TimerWheel::new` asserts a non-zero tick: the tick is a constant of
//!   the reactor, not an option.
//! - `upgrade::channel::Channel::send` asserts at most `MAX_FDS` fds a
//!   message: every caller passes one listener or one connection.
//! - `stats` checks at compile time that each counter family's array and
//!   its enum agree (`const { assert!(..) }`).
//! - Slice indexing in the parsers (`http::request`, `http::target`,
//!   `http::validators`, `http::response`) and in the responders
//!   (`serve::body`, `serve::mod`, `tls`) indexes by a position found in
//!   the same buffer or bounded by its length just before; the fuzz targets
//!   (`fuzzing`, replayed in `cargo test`) drive the parsers and the
//!   session with arbitrary input and reconfiguration in between.
//! - `debug_assert!`s state invariants and are compiled out of release.
//! - Arithmetic on sizes a client sends (`Content-Length`, chunk sizes,
//!   ranges) is checked (`checked_*` or compared against a limit first);
//!   overflow is a 400 or a 416, never a wrap.
//!
//! A held request (a chunked body's head, a parked pipeline) keeps the
//! limits it was parsed under across a reload: what used to reach an
//! `unreachable!` in the session when a reload tightened a limit.

use std::any::Any;
use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::sync::{Mutex, Once};

/// A panic caught by [`guarded`].
#[derive(Debug)]
pub struct Panic {
    pub message: String,
    /// `file:line:column`.
    pub location: String,
    /// Captured the first time a panic comes from `location`: later ones
    /// from the same place say so instead.
    pub backtrace: Option<String>,
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panic '{}' at {}", self.message, self.location)?;
        match &self.backtrace {
            Some(trace) => write!(f, "\n{trace}"),
            None => f.write_str(" (backtrace logged before)"),
        }
    }
}

thread_local! {
    /// Inside a guard: the hook records instead of printing.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    static CAUGHT: RefCell<Option<Panic>> = const { RefCell::new(None) };
}

/// Panic locations whose backtrace was already captured.
static TRACED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Runs `work`; a panic inside it comes back as `Err`.
pub fn guarded<R>(work: impl FnOnce() -> R) -> Result<R, Panic> {
    install_hook();
    let outer = GUARDED.with(|g| g.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(work));
    GUARDED.with(|g| g.set(outer));
    result.map_err(|payload| {
        CAUGHT
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| Panic {
                message: message_of(payload.as_ref()),
                location: "unknown".into(),
                backtrace: None,
            })
    })
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let caught = record(info);
                CAUGHT.with(|c| *c.borrow_mut() = Some(caught));
            } else {
                default(info);
            }
        }));
    });
}

fn record(info: &PanicHookInfo<'_>) -> Panic {
    let location = info
        .location()
        .map_or_else(|| "unknown".into(), |l| l.to_string());
    let first = {
        let mut traced = TRACED.lock().unwrap_or_else(|e| e.into_inner());
        traced
            .get_or_insert_with(HashSet::new)
            .insert(location.clone())
    };
    Panic {
        message: message_of(info.payload()),
        backtrace: first.then(|| Backtrace::force_capture().to_string()),
        location,
    }
}

fn message_of(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(not a string)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_guard_is_a_value_with_its_place_and_one_backtrace() {
        let ok = guarded(|| 7);
        assert_eq!(ok.unwrap(), 7);
        let caught = |n: u32| guarded(|| panic!("boom {n}")).unwrap_err();
        let first = caught(1);
        assert_eq!(first.message, "boom 1");
        assert!(first.location.contains("contain.rs"), "{}", first.location);
        assert!(first.backtrace.is_some());
        let again = caught(2);
        assert_eq!(again.location, first.location);
        assert!(again.backtrace.is_none(), "once per place");
        // Guards nest: the inner one catches, the outer goes on.
        let outer = guarded(|| guarded(|| panic!("inner")).is_err());
        assert!(outer.unwrap());
    }
}
