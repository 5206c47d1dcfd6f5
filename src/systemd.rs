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
    let count = passed_count(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    );
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
    let names: Vec<&str> = names.split(':').collect();
    // `passed_count` keeps `FIRST_FD + count` within an i32.
    (FIRST_FD..FIRST_FD + count)
        .zip(0..)
        .map_while(|(fd, i): (i32, usize)| {
            // SAFETY: fcntl on a number that may not be an open fd is
            // sound: it fails with EBADF.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
                // LISTEN_FDS says more than was passed: owning fds past
                // the last one would close what is not ours.
                log::warn!("LISTEN_FDS is {count}, but fd {fd} is not open: {i} taken");
                return None;
            }
            // SAFETY: systemd passed this fd to us, open, for us to own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let name = names.get(i).copied().unwrap_or("");
            Some(Passed {
                fd,
                tls: matches!(name, "https" | "tls"),
            })
        })
        .collect()
}

/// How many fds systemd passed: `LISTEN_FDS` when `LISTEN_PID` is this
/// process (`me`), else 0. A count whose fds could not all be numbered
/// (past `i32::MAX`) is 0, as libsystemd's `sd_listen_fds` refuses it.
fn passed_count(listen_pid: Option<&str>, listen_fds: Option<&str>, me: u32) -> i32 {
    let pid_matches = listen_pid
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == me);
    let count = listen_fds.and_then(|n| n.parse::<i32>().ok()).unwrap_or(0);
    if !pid_matches || count <= 0 {
        return 0;
    }
    if count > i32::MAX - FIRST_FD {
        log::warn!("LISTEN_FDS is {count}: more fds than a process can have; none taken");
        return 0;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_fds_counts_only_for_this_process_and_within_fd_numbers() {
        let me = 4242;
        assert_eq!(passed_count(Some("4242"), Some("2"), me), 2);
        assert_eq!(passed_count(Some("4243"), Some("2"), me), 0, "another's");
        assert_eq!(passed_count(None, Some("2"), me), 0);
        assert_eq!(passed_count(Some("4242"), None, me), 0);
        for hostile in [
            "-1",
            "0",
            "x",
            "",
            "2147483647",
            "2147483645",
            "99999999999",
        ] {
            assert_eq!(
                passed_count(Some("4242"), Some(hostile), me),
                0,
                "{hostile}"
            );
        }
        // The last fd numbered is i32::MAX.
        assert_eq!(
            passed_count(Some("4242"), Some("2147483644"), me),
            i32::MAX - 3
        );
    }
}
