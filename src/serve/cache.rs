//! The file cache: for files up to `--small-file-bytes` their content,
//! for larger ones their open fd, with validators either way.
//!
//! A keep-alive request for a hot small file then costs one read and one
//! write, and no open/fstat/pread/close. A large file is opened once and
//! its fd shared by every download of it (an [`OpenFile`]: sendfile takes
//! an explicit offset), so a thousand slow downloads of one file cost one
//! file fd, not a thousand.
//!
//! Like nginx's `open_file_cache`, an entry is trusted for
//! `--file-cache-valid` seconds after it was last checked; then the next
//! request that finds it reopens and fstats the file, and keeps the entry
//! only if inode, size and modification time are unchanged. So a file
//! changed on disk is served stale for at most that long (0 disables the
//! cache, and each download then opens its own fd).
//!
//! A cached fd is charged to the fd budget like any file body. One that no
//! response is using is given back when the budget needs it
//! ([`FileCache::release_unused_fd`]) and when no request has asked for it
//! for `--file-cache-valid` ([`FileCache::sweep`], nginx's `inactive`), so
//! a deleted file's space is not held for long. A file asked for all the
//! time keeps its fd: closing it at a sweep between two requests would
//! only make the next one open it again (and allocate its entry anew).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::body::{FileMeta, Validators};
use crate::files::OpenFile;

/// What an entry keeps of the file.
#[derive(Clone)]
pub enum Content {
    /// A small file's bytes.
    Bytes(Arc<[u8]>),
    /// A large file's fd, shared with the responses sending it.
    Fd(Arc<OpenFile>),
}

impl Content {
    /// An fd that only the cache holds: closing it stops no response.
    fn is_unused_fd(&self) -> bool {
        matches!(self, Content::Fd(f) if Arc::strong_count(f) == 1)
    }
}

/// What a hit gives back: everything a file response needs.
#[derive(Clone)]
pub struct Cached {
    pub content: Content,
    pub meta: FileMeta,
    /// `meta`'s, made when the entry was.
    pub validators: Validators,
    /// The path actually served (an index.html, a .br variant).
    pub served_path: Arc<[u8]>,
    pub content_type: &'static str,
    pub charset: bool,
    pub encoding: Option<&'static str>,
    pub vary: bool,
    /// Its type is worth compressing on the fly.
    pub compressible: bool,
    checked: Instant,
    /// The last lookup that found it.
    used: Instant,
}

pub enum Lookup {
    Fresh(Cached),
    /// Present but due for revalidation.
    Stale(Cached),
    Miss,
}

pub struct FileCache {
    /// foldhash: the keys are paths of files that exist (a client cannot
    /// fill the table with keys of its choosing), so the cheaper hash.
    map: HashMap<Box<[u8]>, Cached, foldhash::fast::RandomState>,
    /// Insertion order, for evicting the oldest when full.
    order: VecDeque<Box<[u8]>>,
    /// The keys whose entries hold an fd (few: each is charged to the fd
    /// budget), so that finding one to release does not walk the map.
    fd_keys: Vec<Box<[u8]>>,
    max_entries: usize,
    valid: Duration,
}

impl FileCache {
    pub fn new(max_entries: usize, valid: Duration) -> FileCache {
        FileCache {
            map: HashMap::default(),
            order: VecDeque::new(),
            fd_keys: Vec::new(),
            max_entries,
            valid,
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_entries > 0 && !self.valid.is_zero()
    }

    pub fn lookup(&mut self, key: &[u8], now: Instant) -> Lookup {
        match self.map.get_mut(key) {
            Some(c) => {
                c.used = now;
                match now.saturating_duration_since(c.checked) < self.valid {
                    true => Lookup::Fresh(c.clone()),
                    false => Lookup::Stale(c.clone()),
                }
            }
            None => Lookup::Miss,
        }
    }

    /// The file was checked and is unchanged: trust it anew.
    pub fn revalidated(&mut self, key: &[u8], now: Instant) {
        if let Some(c) = self.map.get_mut(key) {
            c.checked = now;
        }
    }

    pub fn remove(&mut self, key: &[u8]) {
        // `order` keeps the key; eviction skips keys no longer mapped.
        if let Some(Cached {
            content: Content::Fd(_),
            ..
        }) = self.map.remove(key)
        {
            self.fd_keys.retain(|k| &**k != key);
        }
    }

    /// Closes one cached fd that no response is using. Returns whether one
    /// was closed (the fd budget then has one more fd).
    pub fn release_unused_fd(&mut self) -> bool {
        let map = &self.map;
        let Some(i) = self
            .fd_keys
            .iter()
            .position(|k| map.get(k).is_some_and(|c| c.content.is_unused_fd()))
        else {
            return false;
        };
        let key = self.fd_keys.swap_remove(i);
        self.map.remove(&key);
        true
    }

    /// Closes the cached fds that no response uses and that no request
    /// has asked for in `--file-cache-valid`.
    pub fn sweep(&mut self, now: Instant) {
        let (map, valid) = (&mut self.map, self.valid);
        self.fd_keys.retain(|key| {
            let expired = map.get(key).is_none_or(|c| {
                c.content.is_unused_fd() && now.saturating_duration_since(c.used) >= valid
            });
            if expired {
                map.remove(key);
            }
            !expired
        });
    }

    /// Forgets every entry (ROOT now names another directory). Fds that
    /// responses hold stay open until those responses end.
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.fd_keys.clear();
    }

    /// Entries holding an fd.
    pub fn fd_entries(&self) -> usize {
        self.fd_keys.len()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        key: &[u8],
        content: Content,
        meta: FileMeta,
        served_path: &[u8],
        content_type: &'static str,
        charset: bool,
        encoding: Option<&'static str>,
        vary: bool,
        compressible: bool,
        now: Instant,
    ) {
        if !self.enabled() {
            return;
        }
        while self.map.len() >= self.max_entries {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        // Keys removed by `remove` may linger in `order`; bound it.
        if self.order.len() >= self.max_entries.saturating_mul(2) {
            let map = &self.map;
            self.order.retain(|k| map.contains_key(k));
        }
        if matches!(content, Content::Fd(_)) {
            self.fd_keys.push(key.into());
        }
        let entry = Cached {
            content,
            meta,
            validators: meta.validators(),
            served_path: served_path.into(),
            content_type,
            charset,
            encoding,
            vary,
            compressible,
            checked: now,
            used: now,
        };
        match self.map.insert(key.into(), entry) {
            None => self.order.push_back(key.into()),
            Some(Cached {
                content: Content::Fd(_),
                ..
            }) => {
                // Replaced an fd entry: its key is listed twice now.
                if let Some(i) = self.fd_keys.iter().position(|k| &**k == key) {
                    self.fd_keys.swap_remove(i);
                }
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts `content` under `key`, served as `served`, of one
    /// content type, without coding.
    fn put(
        cache: &mut FileCache,
        key: &[u8],
        content: Content,
        served: &[u8],
        content_type: &'static str,
        charset: bool,
        now: Instant,
    ) {
        let meta = meta(1);
        let (encoding, vary, compressible) = (None, false, false);
        cache.insert(
            key,
            content,
            meta,
            served,
            content_type,
            charset,
            encoding,
            vary,
            compressible,
            now,
        );
    }

    fn meta(len: u64) -> FileMeta {
        FileMeta {
            ino: 1,
            len,
            mtime: 2,
            mtime_nsec: 3,
        }
    }

    #[test]
    fn fresh_then_stale_then_revalidated() {
        let t0 = Instant::now();
        let mut cache = FileCache::new(2, Duration::from_secs(1));
        put(
            &mut cache,
            b"a",
            Content::Bytes(Arc::from(&b"A"[..])),
            b"a",
            "text/plain",
            true,
            t0,
        );
        assert!(matches!(cache.lookup(b"a", t0), Lookup::Fresh(_)));
        let later = t0 + Duration::from_secs(2);
        assert!(matches!(cache.lookup(b"a", later), Lookup::Stale(_)));
        cache.revalidated(b"a", later);
        assert!(matches!(cache.lookup(b"a", later), Lookup::Fresh(_)));
        assert!(matches!(cache.lookup(b"b", later), Lookup::Miss));
    }

    #[test]
    fn the_largest_entry_count_is_no_limit() {
        // `--file-cache-entries 18446744073709551615`.
        let t0 = Instant::now();
        let mut cache = FileCache::new(usize::MAX, Duration::from_secs(1));
        for key in [&b"a"[..], b"b"] {
            let bytes = Content::Bytes(Arc::from(key));
            cache.insert(key, bytes, meta(1), key, "x", false, None, false, false, t0);
        }
        assert!(matches!(cache.lookup(b"a", t0), Lookup::Fresh(_)));
    }

    #[test]
    fn bounded_oldest_out() {
        let t0 = Instant::now();
        let mut cache = FileCache::new(2, Duration::from_secs(1));
        for key in [&b"a"[..], b"b", b"c"] {
            put(
                &mut cache,
                key,
                Content::Bytes(Arc::from(key)),
                key,
                "text/plain",
                true,
                t0,
            );
        }
        assert!(matches!(cache.lookup(b"a", t0), Lookup::Miss));
        assert!(matches!(cache.lookup(b"c", t0), Lookup::Fresh(_)));
        cache.remove(b"c");
        for i in 0..10u8 {
            put(
                &mut cache,
                &[i],
                Content::Bytes(Arc::from(&[i][..])),
                &[i],
                "x",
                false,
                t0,
            );
            cache.remove(&[i]);
        }
        assert!(cache.order.len() <= 4);
        assert!(!FileCache::new(0, Duration::from_secs(1)).enabled());
    }

    #[test]
    fn cached_fds_are_released_only_when_unused() {
        let t0 = Instant::now();
        let dir = std::env::temp_dir().join(format!("holdline-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), "x").unwrap();
        let open_files = crate::files::OpenFiles::default();
        let open = || std::fs::File::open(dir.join("f")).unwrap();
        let mut cache = FileCache::new(4, Duration::from_secs(1));
        let in_use = open_files.adopt(open());
        for (key, file) in [
            (&b"busy"[..], Arc::clone(&in_use)),
            (b"free", open_files.adopt(open())),
        ] {
            put(&mut cache, key, Content::Fd(file), key, "x", false, t0);
        }
        assert_eq!((cache.fd_entries(), open_files.count()), (2, 2));
        // The unused one goes; the one a response holds stays.
        assert!(cache.release_unused_fd());
        assert_eq!((cache.fd_entries(), open_files.count()), (1, 1));
        assert!(!cache.release_unused_fd());
        assert!(matches!(cache.lookup(b"busy", t0), Lookup::Fresh(_)));
        // The response ends: still cached while asked for, however long
        // ago it was checked (a sweep between two requests would only make
        // the next one open it again)...
        drop(in_use);
        cache.sweep(t0);
        assert_eq!(cache.fd_entries(), 1);
        let asked = t0 + Duration::from_millis(1500);
        assert!(matches!(cache.lookup(b"busy", asked), Lookup::Stale(_)));
        cache.sweep(t0 + Duration::from_secs(2));
        assert_eq!(cache.fd_entries(), 1, "asked for 0.5 s ago");
        // ... and swept once nobody asked for it in --file-cache-valid.
        cache.sweep(asked + Duration::from_secs(1));
        assert_eq!((cache.fd_entries(), open_files.count()), (0, 0));
        // Pushed out by newer entries, an fd entry leaves its list too.
        let mut small = FileCache::new(1, Duration::from_secs(1));
        put(
            &mut small,
            b"a",
            Content::Fd(open_files.adopt(open())),
            b"a",
            "x",
            false,
            t0,
        );
        put(
            &mut small,
            b"b",
            Content::Bytes(Arc::from(&b"b"[..])),
            b"b",
            "x",
            false,
            t0,
        );
        assert_eq!((small.fd_entries(), open_files.count()), (0, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
