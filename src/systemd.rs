//! systemd without libsystemd: readiness notifications and socket
//! activation, both plain protocols over file descriptors.
//!
//! - [`notify`]: with `Type=notify`, systemd passes `NOTIFY_SOCKET`, a
//!   unix datagram socket (a path, or an abstract name written `@name`);
//!   holdline sends `READY=1` once it serves, `RELOADING=1` then
//!   `READY=1` around a SIGHUP reload, and `STOPPING=1` when a graceful
//!   shutdown begins.
//! - [`listen_fds`]: with socket activation, systemd (or
//!   `systemd-socket-activate`) binds the listeners and passes them as
//!   fds 3, 4, ... with `LISTEN_FDS` and `LISTEN_PID`; holdline uses them
//!   instead of binding its own. `LISTEN_FDNAMES` (`FileDescriptorName=`
//!   in the .socket unit) naming a socket `https` or `tls` makes it a TLS
//!   listener.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;

/// Sends `state` (such as `READY=1`) to systemd's notification socket, if
/// there is one; failures are logged at debug level and otherwise
/// ignored (readiness is advice to the service manager).
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let path = path.as_encoded_bytes();
        match path.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr)
            }
            None => socket.send_to(
                state.as_bytes(),
                std::path::Path::new(std::ffi::OsStr::from_bytes(path)),
            ),
        }
    });
    if let Err(e) = sent {
        log::debug!("NOTIFY_SOCKET {state:?}: {e}");
    }
}

use std::os::unix::ffi::OsStrExt;

/// A listening socket passed by systemd, and whether its name asks for
/// TLS.
pub struct Passed {
    pub fd: OwnedFd,
    pub tls: bool,
}

/// The first fd systemd passes (SD_LISTEN_FDS_START).
const FIRST_FD: i32 = 3;

/// The sockets systemd passed to this process, taken once: `LISTEN_FDS`
/// fds from 3 on, if `LISTEN_PID` is this process. The variables are
/// removed so nothing started later mistakes them for its own.
pub fn listen_fds() -> Vec<Passed> {
    let pid_matches = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    // Only those systemd set: a caller of `start` without socket
    // activation (the in-process tests) never writes the environment.
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        if std::env::var_os(name).is_some() {
            // SAFETY: std serializes its own reads and writes of the
            // environment; what could race is a C `getenv` on another
            // thread, and there is none: `reactor::start` calls this
            // first, before holdline starts any thread (the access-log
            // writer, the compressors and the workers come later), and the
            // binary calls `start` from `main`, its only thread then.
            unsafe { std::env::remove_var(name) };
        }
    }
    if !pid_matches || count <= 0 {
        return Vec::new();
    }
    let names: Vec<&str> = names.split(':').collect();
    (0..count)
        .map(|i| {
            let fd = FIRST_FD + i;
            // SAFETY: systemd passed this fd to us, open, for us to own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: fcntl on an fd we own.
            unsafe {
                libc::fcntl(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    libc::F_SETFD,
                    libc::FD_CLOEXEC,
                )
            };
            let name = names.get(i as usize).copied().unwrap_or("");
            Passed {
                fd,
                tls: matches!(name, "https" | "tls"),
            }
        })
        .collect()
}
