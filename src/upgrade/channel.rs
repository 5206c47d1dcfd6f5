//! The hand-over channel: a `SOCK_SEQPACKET` unix socket pair between the
//! running process and its successor. Each message is one packet (so
//! never split or merged), a short line of text, with at most a few file
//! descriptors beside it (`SCM_RIGHTS`: the kernel gives the receiver its
//! own fds for the same open sockets).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Fds that may travel with one message.
pub const MAX_FDS: usize = 4;

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair: ours (close-on-exec) and the successor's, which
    /// survives its `exec`.
    pub fn pair() -> io::Result<(Channel, OwnedFd)> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two fds socketpair writes.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socketpair just returned both, open and ours alone.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on an fd we own.
        if unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((Channel { fd: ours }, theirs))
    }

    /// The channel end this process was given as `fd` (by its predecessor).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Channel> {
        // SAFETY: fcntl on an fd we own: it is ours, close-on-exec from now.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Channel { fd })
    }

    /// Non-blocking (on the reactor) or blocking (at start, with a
    /// timeout).
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl on an fd we own.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = match on {
            true => flags | libc::O_NONBLOCK,
            false => flags & !libc::O_NONBLOCK,
        };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// A blocking receive gives up after `timeout` (EAGAIN).
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: `tv` is a valid timeval for its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends `message` with `fds` beside it, as one packet.
    pub fn send(&self, message: &[u8], fds: &[RawFd]) -> io::Result<()> {
        assert!(fds.len() <= MAX_FDS, "at most {MAX_FDS} fds a message");
        let mut iov = libc::iovec {
            iov_base: message.as_ptr() as *mut libc::c_void,
            iov_len: message.len(),
        };
        let mut control = [0u8; cmsg_space(MAX_FDS)];
        // SAFETY: msghdr is plain data; zeroed is its empty value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            let bytes = std::mem::size_of_val(fds);
            msg.msg_control = control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is a pure size computation.
            msg.msg_controllen = unsafe { libc::CMSG_SPACE(bytes as u32) } as usize;
            // SAFETY: `control` is large enough for one cmsg of `bytes`
            // (cmsg_space(MAX_FDS) >= CMSG_SPACE(bytes)), and CMSG_FIRSTHDR
            // of a msghdr whose control buffer is that large is non-null.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(bytes as u32) as usize;
                std::ptr::copy_nonoverlapping(
                    fds.as_ptr().cast::<u8>(),
                    libc::CMSG_DATA(cmsg),
                    bytes,
                );
            }
        }
        loop {
            // SAFETY: `msg` points at `iov` and `control`, alive here.
            let rc = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one packet into `buf`, and the fds that came with it
    /// (owned, close-on-exec). `Ok(0)` with no fds is the other end gone.
    pub fn recv(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u8; cmsg_space(MAX_FDS)];
        // SAFETY: msghdr is plain data; zeroed is its empty value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
        let n = loop {
            // SAFETY: `msg` points at `iov` (into `buf`) and `control`.
            let rc =
                unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
            if rc >= 0 {
                break rc as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        // SAFETY: the kernel filled `msg`'s control buffer; the CMSG
        // macros walk it within msg_controllen, and each SCM_RIGHTS
        // payload is an array of fds the kernel just installed for us.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg);
                    let header = libc::CMSG_LEN(0) as usize;
                    let count = ((*cmsg).cmsg_len as usize - header) / std::mem::size_of::<RawFd>();
                    for i in 0..count {
                        let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        if msg.msg_flags & libc::MSG_TRUNC != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a hand-over message too long",
            ));
        }
        Ok(n)
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// CMSG_SPACE for `n` fds, as a constant (the libc function is not const).
const fn cmsg_space(n: usize) -> usize {
    let align = std::mem::size_of::<usize>();
    let header = std::mem::size_of::<libc::cmsghdr>().div_ceil(align) * align;
    let data = (n * std::mem::size_of::<RawFd>()).div_ceil(align) * align;
    header + data
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn the_constant_control_space_is_libc_s() {
        for n in 0..=MAX_FDS {
            let bytes = (n * std::mem::size_of::<RawFd>()) as u32;
            // SAFETY: CMSG_SPACE is a pure size computation.
            assert_eq!(cmsg_space(n), unsafe { libc::CMSG_SPACE(bytes) } as usize);
        }
    }

    #[test]
    fn a_message_carries_its_fds_to_the_other_end() {
        let (ours, theirs) = Channel::pair().unwrap();
        let theirs = Channel::from_fd(theirs).unwrap();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.send(b"C 1 2", &[b.as_raw_fd()]).unwrap();
        drop(b);
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let n = theirs.recv(&mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"C 1 2");
        assert_eq!(fds.len(), 1);
        // The fd received is the same socket: what one end writes, the
        // other reads.
        let mut got = std::os::unix::net::UnixStream::from(fds.pop().unwrap());
        a.write_all(b"hi").unwrap();
        let mut two = [0u8; 2];
        got.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"hi");
        drop(ours);
        assert_eq!(
            theirs.recv(&mut buf, &mut fds).unwrap(),
            0,
            "the other end gone"
        );
    }
}
