//! Opening files beneath ROOT, safely and without allocating.
//!
//! ROOT is held as a directory fd. A request's path (already
//! decoded and normalized by [`crate::http::target`]) is opened relative to
//! it with `openat2(RESOLVE_BENEATH)`: the kernel itself refuses any
//! resolution, `..` or symlink, that would leave ROOT (EXDEV), so a symlink
//! planted inside ROOT cannot serve `/etc/passwd`. With `--follow-symlinks`
//! (and on kernels without openat2, before 5.6) holdline uses plain
//! `openat`, which follows symlinks anywhere; the path itself still cannot
//! contain `..`.
//!
//! Deploys that flip a symlink (`ln -sfn release-2 current`) or rename a
//! new release into place change what ROOT's *path* names, not the
//! directory held open: [`Root::follow`] looks at the path again (one
//! `stat`) and, when it names another directory, holds that one. Files
//! already open (downloads running) keep their old inode, so a response
//! never mixes two releases.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The served directory, held open.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    /// ROOT as configured (perhaps a symlink): what [`Root::follow`]
    /// resolves again.
    given: PathBuf,
    /// The directory held, as its canonical path.
    path: PathBuf,
    /// Its device and inode, to tell when the given path names another.
    id: (u64, u64),
    /// `--follow-symlinks`: plain openat, symlinks may lead anywhere.
    follow_outside: bool,
}

static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

impl Root {
    /// Opens ROOT; fails if it is not a readable directory.
    pub fn open(path: &Path, follow_outside: bool) -> io::Result<Root> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)?;
        // Reading the directory proves the permission, not just the open.
        std::fs::read_dir(path)?;
        let meta = file.metadata()?;
        let canonical = std::fs::canonicalize(path)?;
        Ok(Root {
            dir: OwnedFd::from(file),
            given: path.to_path_buf(),
            path: canonical,
            id: (meta.dev(), meta.ino()),
            follow_outside,
        })
    }

    /// The directory served (canonical: where a symlinked ROOT points).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// ROOT as configured: what a reload compares with the new path.
    pub fn given(&self) -> &Path {
        &self.given
    }

    /// The directory's device and inode: what tells two ROOTs apart in a
    /// cache key, whatever their paths.
    pub fn id(&self) -> (u64, u64) {
        self.id
    }

    /// ROOT itself may be searched by this process (its files can be
    /// opened at all); asked only after an open failed with EACCES.
    pub fn searchable(&self) -> bool {
        // SAFETY: a valid directory fd and a NUL-terminated literal; no
        // memory is handed to the kernel but the name.
        let rc = unsafe {
            libc::faccessat(
                self.dir.as_raw_fd(),
                c".".as_ptr(),
                libc::X_OK,
                libc::AT_EACCESS,
            )
        };
        rc == 0
    }

    /// Looks at ROOT's path again: when it names another directory than
    /// the one held (a deploy flipped its symlink or renamed a release
    /// into place), holds that one and returns true. A path that cannot
    /// be resolved now (a flip half done, a missing mount) keeps the
    /// directory held, with the error.
    pub fn follow(&mut self) -> io::Result<bool> {
        let meta = std::fs::metadata(&self.given)?;
        if (meta.dev(), meta.ino()) == self.id {
            return Ok(false);
        }
        *self = Root::open(&self.given, self.follow_outside)?;
        Ok(true)
    }

    /// Opens `rel` (relative, normalized; empty is ROOT itself) read-only
    /// beneath ROOT. `scratch` is reused for the NUL-terminated name.
    ///
    /// O_NONBLOCK keeps a FIFO in ROOT from blocking the reactor in open.
    pub fn open_beneath(&self, rel: &[u8], scratch: &mut Vec<u8>) -> io::Result<File> {
        scratch.clear();
        if rel.is_empty() {
            scratch.push(b'.');
        } else {
            scratch.extend_from_slice(rel);
        }
        scratch.push(0);
        let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        let fd = if self.follow_outside || NO_OPENAT2.load(Ordering::Relaxed) {
            openat(self.dir.as_raw_fd(), scratch, flags)
        } else {
            match openat2(self.dir.as_raw_fd(), scratch, flags) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    log::warn!("openat2 is not available: symlinks are followed outside ROOT");
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    openat(self.dir.as_raw_fd(), scratch, flags)
                }
                other => other,
            }
        }?;
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }
}

/// A file held open for response bodies, shared by every connection that
/// sends it (and by the file cache): `sendfile` and `pread` take an
/// explicit offset, so one fd serves any number of concurrent downloads.
/// Each one alive counts in its [`OpenFiles`] tally, which is what the fd
/// budget charges: a thousand downloads of one file cost one file fd.
#[derive(Debug)]
pub struct OpenFile {
    file: File,
    tally: Arc<AtomicUsize>,
}

impl OpenFile {
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        self.tally.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts the [`OpenFile`]s alive, wherever they are held (a response in
/// flight, the file cache, or both): the fds that file bodies cost.
///
/// One per reactor; the counter is atomic only so that a reactor can be
/// moved to its worker thread (it never crosses threads afterwards).
#[derive(Debug, Default)]
pub struct OpenFiles {
    tally: Arc<AtomicUsize>,
}

impl OpenFiles {
    /// Wraps a freshly opened file; it counts until its last holder drops it.
    pub fn adopt(&self, file: File) -> Arc<OpenFile> {
        self.tally.fetch_add(1, Ordering::Relaxed);
        Arc::new(OpenFile {
            file,
            tally: Arc::clone(&self.tally),
        })
    }

    /// File fds open for bodies right now.
    pub fn count(&self) -> usize {
        self.tally.load(Ordering::Relaxed)
    }
}

fn openat2(dir: libc::c_int, name: &[u8], flags: libc::c_int) -> io::Result<libc::c_int> {
    // SAFETY: open_how is plain integers (flags, mode, resolve): all zeros
    // is a valid value, and what the kernel requires of `mode` without
    // O_CREAT.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    loop {
        // SAFETY: `name` is NUL-terminated; `how` is a valid open_how.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                name.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if rc >= 0 {
            return Ok(rc as libc::c_int);
        }
        let err = io::Error::last_os_error();
        // EAGAIN: RESOLVE_CACHED is not set, but be safe; EINTR: retry.
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn openat(dir: libc::c_int, name: &[u8], flags: libc::c_int) -> io::Result<libc::c_int> {
    loop {
        // SAFETY: `name` is NUL-terminated.
        let rc = unsafe { libc::openat(dir, name.as_ptr().cast(), flags) };
        if rc >= 0 {
            return Ok(rc);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// The Content-Type for a path, from its extension through `mime_guess`
/// (a maintained table, not a hand-written one), and whether to add
/// `charset=utf-8`.
pub fn content_type(rel: &[u8]) -> (&'static str, bool) {
    let mime = mime_guess::from_path(Path::new(OsStr::from_bytes(rel)))
        .first_raw()
        .unwrap_or("application/octet-stream");
    let text = mime.starts_with("text/")
        || matches!(
            mime,
            "application/javascript" | "application/json" | "image/svg+xml" | "application/xml"
        );
    (mime, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(content_type(b"a/index.html"), ("text/html", true));
        assert_eq!(content_type(b"x.png"), ("image/png", false));
        assert_eq!(content_type(b"noext"), ("application/octet-stream", false));
        assert!(content_type(b"app.js").1);
    }

    #[test]
    fn beneath_refuses_escaping_symlinks() {
        let dir = std::env::temp_dir().join(format!("holdline-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(dir.join("secret"), "no").unwrap();
        std::fs::write(dir.join("www/ok.txt"), "yes").unwrap();
        std::os::unix::fs::symlink("../secret", dir.join("www/escape")).unwrap();
        std::os::unix::fs::symlink("ok.txt", dir.join("www/inside")).unwrap();
        let root = Root::open(&dir.join("www"), false).unwrap();
        let mut scratch = Vec::new();
        assert!(root.open_beneath(b"ok.txt", &mut scratch).is_ok());
        assert!(root.open_beneath(b"inside", &mut scratch).is_ok());
        assert!(
            root.open_beneath(b"", &mut scratch)
                .unwrap()
                .metadata()
                .unwrap()
                .is_dir()
        );
        let err = root.open_beneath(b"escape", &mut scratch).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EXDEV));
        let anywhere = Root::open(&dir.join("www"), true).unwrap();
        let open_files = OpenFiles::default();
        let shared = open_files.adopt(root.open_beneath(b"ok.txt", &mut scratch).unwrap());
        let again = Arc::clone(&shared);
        assert_eq!(open_files.count(), 1, "one fd however many holders");
        drop(shared);
        assert_eq!(open_files.count(), 1);
        drop(again);
        assert_eq!(open_files.count(), 0);
        assert!(anywhere.open_beneath(b"escape", &mut scratch).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn root_follows_a_flipped_symlink_and_files_open_keep_their_release() {
        let dir = std::env::temp_dir().join(format!("holdline-flip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (release, text) in [("r1", "one"), ("r2", "two")] {
            std::fs::create_dir_all(dir.join(release)).unwrap();
            std::fs::write(dir.join(release).join("f.txt"), text).unwrap();
        }
        std::os::unix::fs::symlink("r1", dir.join("current")).unwrap();
        let mut root = Root::open(&dir.join("current"), false).unwrap();
        assert_eq!(root.path(), std::fs::canonicalize(dir.join("r1")).unwrap());
        let mut scratch = Vec::new();
        let read = |f: File| std::io::read_to_string(f).unwrap();
        let open_before = root.open_beneath(b"f.txt", &mut scratch).unwrap();
        assert!(!root.follow().unwrap(), "nothing moved");
        // ln -sfn r2 current: a new symlink renamed over the old one.
        std::os::unix::fs::symlink("r2", dir.join("next")).unwrap();
        std::fs::rename(dir.join("next"), dir.join("current")).unwrap();
        assert!(root.follow().unwrap());
        assert_eq!(
            read(root.open_beneath(b"f.txt", &mut scratch).unwrap()),
            "two"
        );
        assert_eq!(read(open_before), "one", "an open file keeps its release");
        // A path that vanishes keeps the directory held.
        std::fs::remove_file(dir.join("current")).unwrap();
        assert!(root.follow().is_err());
        assert_eq!(
            read(root.open_beneath(b"f.txt", &mut scratch).unwrap()),
            "two"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
