//! A fault injector for tests: panics and I/O errors on chosen requests,
//! at chosen places, so that containment and error paths can be tested
//! against the real server. Compiled into debug builds only (`cargo
//! test`, `cargo build`); in a release build every hook is an empty
//! inline function.
//!
//! The faults come from the environment, read once:
//! `HOLDLINE_FAULTS="panic@respond=/crash;eio@open=/broken.txt"`, each a
//! `what@where=needle`: the fault happens at `where` when the request
//! target (or, for the compressor and opens, the path) contains `needle`.
//!
//! | where      | what it stands for                                    |
//! | ---------- | ----------------------------------------------------- |
//! | `session`  | the HTTP session, as it parses a request              |
//! | `respond`  | the responder, as it answers one                       |
//! | `tls`      | the TLS transport, as it decrypts a request's bytes   |
//! | `compress` | the compressor thread, on a file's job                |
//! | `open`     | opening a file beneath ROOT (`eio`: it fails with EIO)|
//! | `read`     | reading a small file's bytes (`eio`)                  |
//! | `worker`   | the reactor's loop, outside any connection, once the  |
//! |            | request was answered (a bug no guard contains)        |

/// Where a fault may be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Session,
    Respond,
    Tls,
    Compress,
    Open,
    Read,
    Worker,
}

#[cfg(debug_assertions)]
mod active {
    use super::Point;
    use std::sync::OnceLock;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum What {
        Panic,
        Eio,
    }

    struct Fault {
        what: What,
        point: Point,
        needle: Vec<u8>,
    }

    fn faults() -> &'static [Fault] {
        static FAULTS: OnceLock<Vec<Fault>> = OnceLock::new();
        FAULTS.get_or_init(|| {
            let Ok(spec) = std::env::var("HOLDLINE_FAULTS") else {
                return Vec::new();
            };
            let parsed: Vec<Fault> = spec.split(';').filter_map(parse).collect();
            if !parsed.is_empty() {
                log::warn!("fault injection on: {spec}");
            }
            parsed
        })
    }

    fn parse(item: &str) -> Option<Fault> {
        let (what, rest) = item.split_once('@')?;
        let (point, needle) = rest.split_once('=')?;
        let what = match what {
            "panic" => What::Panic,
            "eio" => What::Eio,
            _ => return None,
        };
        let point = match point {
            "session" => Point::Session,
            "respond" => Point::Respond,
            "tls" => Point::Tls,
            "compress" => Point::Compress,
            "open" => Point::Open,
            "read" => Point::Read,
            "worker" => Point::Worker,
            _ => return None,
        };
        Some(Fault {
            what,
            point,
            needle: needle.as_bytes().to_vec(),
        })
    }

    fn matching(point: Point, what: What, subject: &[u8]) -> bool {
        faults().iter().any(|f| {
            f.point == point
                && f.what == what
                && subject.windows(f.needle.len()).any(|w| w == f.needle)
        })
    }

    #[track_caller]
    pub fn panic_at(point: Point, subject: &[u8]) {
        if matching(point, What::Panic, subject) {
            panic!(
                "injected fault at {point:?} for {:?}",
                String::from_utf8_lossy(subject)
            );
        }
    }

    thread_local! {
        static WORKER_FAULT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub fn note_worker_fault(subject: &[u8]) {
        if matching(Point::Worker, What::Panic, subject) {
            WORKER_FAULT.with(|f| f.set(true));
        }
    }

    #[track_caller]
    pub fn worker_fault() {
        if WORKER_FAULT.with(|f| f.replace(false)) {
            panic!("injected fault in the reactor's loop");
        }
    }

    pub fn eio_at(point: Point, subject: &[u8]) -> std::io::Result<()> {
        match matching(point, What::Eio, subject) {
            true => Err(std::io::Error::from_raw_os_error(libc::EIO)),
            false => Ok(()),
        }
    }
}

/// Panics here if a fault says so for `subject` (the panic's location is
/// the caller's).
#[inline(always)]
#[track_caller]
pub fn panic_at(point: Point, subject: &[u8]) {
    #[cfg(debug_assertions)]
    active::panic_at(point, subject);
    #[cfg(not(debug_assertions))]
    let _ = (point, subject);
}

/// Fails with EIO here if a fault says so for `subject`.
#[inline(always)]
pub fn eio_at(point: Point, subject: &[u8]) -> std::io::Result<()> {
    #[cfg(debug_assertions)]
    return active::eio_at(point, subject);
    #[cfg(not(debug_assertions))]
    {
        let _ = (point, subject);
        Ok(())
    }
}

/// Notes a `panic@worker` fault for `subject`, to fire at
/// [`worker_fault`], outside the connection being answered.
#[inline(always)]
pub fn note_worker_fault(subject: &[u8]) {
    #[cfg(debug_assertions)]
    active::note_worker_fault(subject);
    #[cfg(not(debug_assertions))]
    let _ = subject;
}

/// The reactor's loop, between turns: a noted worker fault panics here.
#[inline(always)]
#[track_caller]
pub fn worker_fault() {
    #[cfg(debug_assertions)]
    active::worker_fault();
}
