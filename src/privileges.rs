//! `--user`: giving up root once everything that needs it is done.
//!
//! A server started as root (to bind port 80 or 443, or to read keys only
//! root may read) switches to an unprivileged user after it has bound its
//! listeners, opened ROOT and loaded its certificates, and before it
//! serves a byte: the supplementary groups, then the group, then the user
//! (in that order: once the user is not root, the others can no longer
//! change). A server started as root without `--user` says so in a
//! warning. After the switch, SIGHUP reloads certificates with the new
//! user's rights: keys only root may read then fail to reload and the
//! old ones stay (logged).

use std::ffi::CString;
use std::fmt;
use std::io;

/// Why the switch failed; `Display` is one line.
#[derive(Debug)]
pub enum DropError {
    /// `--user` given to a process that is not root.
    NotRoot,
    /// No such user or group.
    Unknown(String),
    /// A set*id call failed.
    Call(&'static str, io::Error),
}

impl fmt::Display for DropError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropError::NotRoot => write!(f, "--user needs the server to be started as root"),
            DropError::Unknown(name) => write!(f, "--user: no such user or group: {name}"),
            DropError::Call(call, e) => write!(f, "--user: {call} failed: {e}"),
        }
    }
}

impl std::error::Error for DropError {}

/// Switches to `spec` (`user` or `user:group`) if given; warns when the
/// process stays root.
pub fn drop_to(spec: Option<&str>) -> Result<(), DropError> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let Some(spec) = spec else {
        if root {
            log::warn!("running as root: pass --user to switch to an unprivileged user once bound");
        }
        return Ok(());
    };
    if !root {
        return Err(DropError::NotRoot);
    }
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let (uid, user_gid) = lookup_user(user)?;
    let gid = match group {
        Some(group) => lookup_group(group)?,
        None => user_gid,
    };
    let check = |call: &'static str, rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(DropError::Call(call, io::Error::last_os_error()))
        }
    };
    // libc's wrappers (glibc, musl) apply each change to every thread of
    // the process, as POSIX requires: the access-log writer and the
    // compressors, already running, give up root too (the raw syscalls
    // would change only this thread).
    // SAFETY: plain calls with valid arguments; `&gid` outlives the call.
    unsafe {
        check("setgroups", libc::setgroups(1, &gid))?;
        check("setgid", libc::setgid(gid))?;
        check("setuid", libc::setuid(uid))?;
    }
    log::info!("switched to user {user} (uid {uid}, gid {gid})");
    Ok(())
}

fn lookup_user(name: &str) -> Result<(libc::uid_t, libc::gid_t), DropError> {
    let unknown = || DropError::Unknown(name.to_string());
    let cname = CString::new(name).map_err(|_| unknown())?;
    // SAFETY: getpwnam returns a pointer to static storage or null; it is
    // read at once, before any other call that could overwrite it. Only
    // another getpw* call could, and no other thread makes one: the
    // access-log writer and the compressors (when compression is on)
    // already run but never look up users, and the workers start after
    // `start` returns.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return Err(unknown());
    }
    // SAFETY: non-null, points at a valid passwd.
    unsafe { Ok(((*pw).pw_uid, (*pw).pw_gid)) }
}

fn lookup_group(name: &str) -> Result<libc::gid_t, DropError> {
    let unknown = || DropError::Unknown(name.to_string());
    let cname = CString::new(name).map_err(|_| unknown())?;
    // SAFETY: as for getpwnam (with getgr* calls).
    let gr = unsafe { libc::getgrnam(cname.as_ptr()) };
    if gr.is_null() {
        return Err(unknown());
    }
    // SAFETY: non-null, points at a valid group.
    unsafe { Ok((*gr).gr_gid) }
}
