//! What a failing disk, a network filesystem gone away or an unreadable
//! ROOT turn into: a precise status for the request, and one log line
//! per episode (see [`crate::episode`]) instead of one per request. The
//! rest of the server goes on serving.
//!
//! | failure                                   | status                  |
//! | ----------------------------------------- | ----------------------- |
//! | the file is not there (or leaves ROOT)    | 404                     |
//! | the file is not readable, ROOT is         | 403                     |
//! | ROOT itself cannot be searched            | 503, `Retry-After`      |
//! | out of file descriptors                   | 503, `Retry-After`      |
//! | opening: EIO, ESTALE, ENOTCONN, ENXIO,    | 503, `Retry-After`      |
//! | ENODEV (the storage is failing)           |                         |
//! | reading a file's bytes fails              | 500                     |
//! | anything else                             | 500                     |
//!
//! A 503 says "try again, or try another instance": what a load balancer
//! in front should do when one machine's disk fails.

use std::io;

use crate::episode::Episode;
use crate::files::Root;
use crate::http::Status;

static OPENS: Episode = Episode::new("opening files beneath ROOT");
static READS: Episode = Episode::new("reading files beneath ROOT");
static ROOT_ACCESS: Episode = Episode::new("ROOT cannot be searched");
static FDS: Episode = Episode::new("opening files: out of file descriptors");

/// Storage that is failing, not a request that asks for the wrong thing.
fn storage_failing(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::ESTALE | libc::ENOTCONN | libc::ENXIO | libc::ENODEV)
    )
}

/// The open failed for want of a file descriptor (counted apart: the fd
/// budget's own figure, `open_emfile`).
pub fn out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// The status for a failed open beneath ROOT.
pub fn open_failed(e: &io::Error, root: &Root) -> Status {
    match e.raw_os_error() {
        // EXDEV: openat2 refused to leave ROOT (a symlink pointing out).
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EXDEV | libc::ENAMETOOLONG) => {
            Status::NotFound
        }
        Some(libc::EACCES | libc::EPERM) if !root.searchable() => {
            ROOT_ACCESS.failed(&format_args!("{}: {e}", root.path().display()));
            Status::ServiceUnavailable
        }
        Some(libc::EACCES | libc::EPERM) => Status::Forbidden,
        // Out of file descriptors: a transient condition, say so.
        Some(libc::EMFILE | libc::ENFILE) => {
            FDS.failed(e);
            Status::ServiceUnavailable
        }
        _ if storage_failing(e) => {
            OPENS.failed(e);
            Status::ServiceUnavailable
        }
        _ => {
            OPENS.failed(e);
            Status::InternalServerError
        }
    }
}

/// An open (and its fstat) beneath ROOT worked: any failure episode of
/// opens is over.
pub fn opened() {
    OPENS.succeeded();
    ROOT_ACCESS.succeeded();
    FDS.succeeded();
}

/// The status for a file whose bytes (or metadata) could not be read: it
/// was there, and the server failed to read it (nginx answers 500 too).
pub fn read_failed(e: &io::Error) -> Status {
    READS.failed(e);
    Status::InternalServerError
}

/// A file's bytes were read: any failure episode of reads is over.
pub fn read() {
    READS.succeeded();
}
