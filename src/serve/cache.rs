//! The small-file cache: content and validators of files up to
//! `--small-file-bytes`, so a keep-alive request for a hot small file costs
//! one read and one write, and no open/fstat/pread/close.
//!
//! Like nginx's `open_file_cache`, an entry is trusted for
//! `--file-cache-valid` seconds after it was last checked; then the next
//! request that finds it reopens and fstats the file, and keeps the entry
//! only if inode, size and modification time are unchanged. So a file
//! changed on disk is served stale for at most that long (0 disables the
//! cache). Large files are never cached: their cost is sendfile, not the
//! open, and a cached fd would eat into the fd budget.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::file::FileMeta;

/// What a hit gives back: everything a file response needs.
#[derive(Clone)]
pub struct Cached {
    pub content: Arc<[u8]>,
    pub meta: FileMeta,
    /// The path actually served (an index.html, a .br variant).
    pub served_path: Arc<[u8]>,
    pub content_type: &'static str,
    pub charset: bool,
    pub encoding: Option<&'static str>,
    pub vary: bool,
    checked: Instant,
}

pub enum Lookup {
    Fresh(Cached),
    /// Present but due for revalidation.
    Stale(Cached),
    Miss,
}

pub struct FileCache {
    map: HashMap<Box<[u8]>, Cached>,
    /// Insertion order, for evicting the oldest when full.
    order: VecDeque<Box<[u8]>>,
    max_entries: usize,
    valid: Duration,
}

impl FileCache {
    pub fn new(max_entries: usize, valid: Duration) -> FileCache {
        FileCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            max_entries,
            valid,
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_entries > 0 && !self.valid.is_zero()
    }

    pub fn lookup(&self, key: &[u8], now: Instant) -> Lookup {
        match self.map.get(key) {
            Some(c) if now.saturating_duration_since(c.checked) < self.valid => {
                Lookup::Fresh(c.clone())
            }
            Some(c) => Lookup::Stale(c.clone()),
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
        self.map.remove(key);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        key: &[u8],
        content: Arc<[u8]>,
        meta: FileMeta,
        served_path: &[u8],
        content_type: &'static str,
        charset: bool,
        encoding: Option<&'static str>,
        vary: bool,
        now: Instant,
    ) {
        if !self.enabled() {
            return;
        }
        while self.map.len() >= self.max_entries {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.map.remove(&oldest);
        }
        // Keys removed by `remove` may linger in `order`; bound it.
        if self.order.len() >= 2 * self.max_entries {
            let map = &self.map;
            self.order.retain(|k| map.contains_key(k));
        }
        let entry = Cached {
            content,
            meta,
            served_path: served_path.into(),
            content_type,
            charset,
            encoding,
            vary,
            checked: now,
        };
        if self.map.insert(key.into(), entry).is_none() {
            self.order.push_back(key.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        cache.insert(
            b"a",
            Arc::from(&b"A"[..]),
            meta(1),
            b"a",
            "text/plain",
            true,
            None,
            false,
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
    fn bounded_oldest_out() {
        let t0 = Instant::now();
        let mut cache = FileCache::new(2, Duration::from_secs(1));
        for key in [&b"a"[..], b"b", b"c"] {
            cache.insert(
                key,
                Arc::from(key),
                meta(1),
                key,
                "text/plain",
                true,
                None,
                false,
                t0,
            );
        }
        assert!(matches!(cache.lookup(b"a", t0), Lookup::Miss));
        assert!(matches!(cache.lookup(b"c", t0), Lookup::Fresh(_)));
        cache.remove(b"c");
        for i in 0..10u8 {
            cache.insert(
                &[i],
                Arc::from(&[i][..]),
                meta(1),
                &[i],
                "x",
                false,
                None,
                false,
                t0,
            );
            cache.remove(&[i]);
        }
        assert!(cache.order.len() <= 4);
        assert!(!FileCache::new(0, Duration::from_secs(1)).enabled());
    }
}
