//! `--etag hash`: entity tags from the file's content, for builds that
//! set every mtime to the same instant (Nix, reproducible images), where
//! nginx's formula (mtime and size) gives two versions of a file of the
//! same size one tag, and for instances whose copies of a file do not
//! keep its mtime.
//!
//! The tag is the first 16 bytes of the SHA-256 of the representation's
//! bytes, in hex. It is computed once per file version (inode, size and
//! mtime to the nanosecond) on a thread of its own, never on the reactor:
//! the first request for a version asks for it and is answered without an
//! ETag (Last-Modified still validates), and every response after the
//! hash is in carries it. The table is process-wide (the workers share
//! it), holds at most `--file-cache-entries` versions (an arbitrary one
//! goes when it is full), and at most [`MAX_QUEUED`] files wait to be
//! hashed and one is being hashed, each holding a duplicated fd (the fd
//! budget reserves them: [`crate::budget::Reserve::helpers`]); a request
//! that finds the queue full just asks again next time.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock, RwLock};

use super::body::{FileMeta, FileRoute, FileSource};

/// Files waiting for the hasher, at most.
pub const MAX_QUEUED: usize = 4;

/// The heap one hashed version holds in the table (key, tag, the map's
/// own slot), for the memory bound.
pub const BYTES_PER_ENTRY: usize = 96;

/// A file version: what makes a tag stale when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Version {
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Version {
    fn of(meta: &FileMeta) -> Version {
        Version {
            ino: meta.ino,
            len: meta.len,
            mtime: meta.mtime,
            mtime_nsec: meta.mtime_nsec,
        }
    }
}

enum Bytes {
    File(File),
    Memory(Arc<[u8]>),
}

struct Job {
    version: Version,
    bytes: Bytes,
}

#[derive(Default)]
struct Table {
    done: HashMap<Version, [u8; 16]>,
    pending: HashSet<Version>,
}

/// The content hashes of file versions, and the thread that makes them.
pub struct ContentHashes {
    table: Arc<RwLock<Table>>,
    jobs: SyncSender<Job>,
}

/// The process's table, started on first use with room for
/// `max_entries` versions (`None` if its thread cannot start).
pub fn process(max_entries: usize) -> Option<&'static ContentHashes> {
    static HASHES: OnceLock<Option<ContentHashes>> = OnceLock::new();
    HASHES
        .get_or_init(|| match ContentHashes::start(max_entries.max(1)) {
            Ok(hashes) => Some(hashes),
            Err(e) => {
                log::error!("--etag hash: no hashing thread ({e}): responses go without ETag");
                None
            }
        })
        .as_ref()
}

impl ContentHashes {
    fn start(max_entries: usize) -> std::io::Result<ContentHashes> {
        let table: Arc<RwLock<Table>> = Arc::default();
        let (jobs, queue) = sync_channel(MAX_QUEUED);
        let for_thread = Arc::clone(&table);
        std::thread::Builder::new()
            .name("holdline-etag".into())
            .spawn(move || hash_files(queue, &for_thread, max_entries))?;
        Ok(ContentHashes { table, jobs })
    }

    /// The tag of `found`'s version if it is known; otherwise it is asked
    /// for (once), and `None` for now. A representation holdline
    /// compressed itself is never hashed here: its tag is the file's.
    pub fn tag(&self, found: &FileRoute) -> Option<[u8; 16]> {
        let version = Version::of(&found.meta);
        {
            let table = self.table.read().unwrap_or_else(|p| p.into_inner());
            if let Some(tag) = table.done.get(&version) {
                return Some(*tag);
            }
            if table.pending.contains(&version) {
                return None;
            }
        }
        let bytes = match &found.source {
            FileSource::Open(file) => file.try_clone().ok().map(Bytes::File),
            FileSource::Shared(open) => open.file().try_clone().ok().map(Bytes::File),
            FileSource::Memory(bytes) => Some(Bytes::Memory(Arc::clone(bytes))),
            FileSource::Compressed(_) => None,
        }?;
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        if !table.pending.insert(version) {
            return None;
        }
        match self.jobs.try_send(Job { version, bytes }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                table.pending.remove(&version);
            }
        }
        None
    }
}

/// The hasher's loop: one file at a time, read with `pread` in 64 KiB
/// chunks; a file that changed while it was read gets no tag.
fn hash_files(queue: Receiver<Job>, table: &RwLock<Table>, max_entries: usize) {
    let mut buf = vec![0u8; 64 * 1024];
    for Job { version, bytes } in queue {
        let tag = match &bytes {
            Bytes::Memory(bytes) => Some(digest(&[bytes])),
            Bytes::File(file) => hash_file(file, version, &mut buf),
        };
        drop(bytes);
        let mut table = table.write().unwrap_or_else(|p| p.into_inner());
        table.pending.remove(&version);
        if let Some(tag) = tag {
            if table.done.len() >= max_entries
                && let Some(&any) = table.done.keys().next()
            {
                table.done.remove(&any);
            }
            table.done.insert(version, tag);
        }
    }
}

fn hash_file(file: &File, version: Version, buf: &mut [u8]) -> Option<[u8; 16]> {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut offset = 0u64;
    while offset < version.len {
        let want = buf.len().min((version.len - offset) as usize);
        match file.read_at(&mut buf[..want], offset) {
            Ok(0) => return None, // shrank
            Ok(n) => {
                context.update(&buf[..n]);
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("--etag hash: {e}");
                return None;
            }
        }
    }
    let meta = file.metadata().ok()?;
    let unchanged = meta.len() == version.len
        && meta.mtime() == version.mtime
        && meta.mtime_nsec() == version.mtime_nsec;
    unchanged.then(|| truncate(context.finish().as_ref()))
}

fn digest(parts: &[&[u8]]) -> [u8; 16] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    truncate(context.finish().as_ref())
}

fn truncate(sha256: &[u8]) -> [u8; 16] {
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&sha256[..16]);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn route(source: FileSource, meta: FileMeta) -> FileRoute {
        FileRoute {
            source,
            meta,
            content_type: "text/plain",
            charset: true,
            encoding: None,
            vary: false,
            compressible: false,
        }
    }

    fn wait_tag(hashes: &ContentHashes, found: &FileRoute) -> [u8; 16] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(tag) = hashes.tag(found) {
                return tag;
            }
            assert!(Instant::now() < deadline, "no tag");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_version_is_hashed_once_off_the_caller_and_by_content() {
        let hashes = ContentHashes::start(8).unwrap();
        let meta = FileMeta {
            ino: 1,
            len: 5,
            mtime: 1,
            mtime_nsec: 0,
        };
        let a = route(FileSource::Memory(Arc::from(&b"hello"[..])), meta);
        // First ask: unknown yet.
        assert_eq!(hashes.tag(&a), None);
        let tag = wait_tag(&hashes, &a);
        assert_eq!(tag, digest(&[b"hello"]));
        // Same content elsewhere (another inode, the same mtime): the same
        // tag; other content of the same size and mtime: another.
        let b = route(
            FileSource::Memory(Arc::from(&b"hello"[..])),
            FileMeta { ino: 2, ..meta },
        );
        assert_eq!(wait_tag(&hashes, &b), tag);
        let c = route(
            FileSource::Memory(Arc::from(&b"world"[..])),
            FileMeta { ino: 3, ..meta },
        );
        assert_ne!(wait_tag(&hashes, &c), tag);
        // A representation compressed here is never hashed.
        let z = route(
            FileSource::Compressed(Arc::from(&b"zz"[..])),
            FileMeta { ino: 4, ..meta },
        );
        assert_eq!(hashes.tag(&z), None);
    }

    #[test]
    fn a_file_is_read_whole_and_the_table_stays_bounded() {
        let path = std::env::temp_dir().join(format!("holdline-hash-{}", std::process::id()));
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &body).unwrap();
        let file = File::open(&path).unwrap();
        let m = file.metadata().unwrap();
        let meta = FileMeta {
            ino: m.ino(),
            len: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        };
        let hashes = ContentHashes::start(2).unwrap();
        let found = route(FileSource::Open(file), meta);
        assert_eq!(wait_tag(&hashes, &found), digest(&[&body]));
        for ino in 10..20 {
            let other = route(
                FileSource::Memory(Arc::from(&b"x"[..])),
                FileMeta {
                    ino,
                    len: 1,
                    ..meta
                },
            );
            wait_tag(&hashes, &other);
        }
        assert!(hashes.table.read().unwrap().done.len() <= 2);
        let _ = std::fs::remove_file(&path);
    }
}
