//! SIGINT and SIGTERM (stop), SIGHUP (reload), SIGUSR1 (reopen the
//! access log) and SIGUSR2 (upgrade the binary) delivered into the
//! reactor through a signalfd, so a signal is just another readable token:
//! no handler runs at an arbitrary point, and nothing is shared with one.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct SignalFd {
    fd: OwnedFd,
}

/// The signals one drain found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// SIGINT or SIGTERM: shut down.
    pub stop: usize,
    /// SIGHUP: reload.
    pub reload: usize,
    /// SIGUSR1: reopen the access log (logrotate's convention).
    pub reopen: usize,
    /// SIGUSR2: start the binary again and hand it everything (nginx's
    /// convention).
    pub upgrade: usize,
}

impl SignalFd {
    /// Blocks SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 for this thread (and threads it starts
    /// later) and opens a non-blocking signalfd for them.
    pub fn new() -> io::Result<SignalFd> {
        // SAFETY: plain libc calls on a zeroed, then initialized, sigset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(SignalFd {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Reads every pending signal; returns how many of each kind.
    pub fn drain(&self) -> Taken {
        let mut taken = Taken::default();
        loop {
            // SAFETY: signalfd_siginfo is plain integers: all zeros is a
            // valid value.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: `info` is valid for `size` bytes.
            let rc = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if rc == size as isize {
                match info.ssi_signo as i32 {
                    libc::SIGHUP => taken.reload += 1,
                    libc::SIGUSR1 => taken.reopen += 1,
                    libc::SIGUSR2 => taken.upgrade += 1,
                    _ => taken.stop += 1,
                }
                continue;
            }
            if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return taken;
        }
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
