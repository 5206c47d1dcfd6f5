//! On-the-fly compression: text compressed once per file version, kept
//! in memory, and served from there to every client that accepts it.
//!
//! nginx's `gzip on` compresses on every request; holdline compresses a
//! file once, when a client first asks for it in a coding it accepts (br
//! preferred, then gzip: RFC 9110 §12.5.3, a `q=0` refuses), and keeps
//! the result until the file changes. Which types qualify comes from
//! mime-db's `compressible` flags (the `compressible` crate): text, CSS,
//! JavaScript, JSON, SVG, XML, wasm...; images, archives, fonts in
//! compressed formats and the like never do. Files of more than
//! `--compress-max-bytes`, and files with a FILE.br or FILE.gz beside them
//! (precompressed, preferred), are sent as they are.
//!
//! **Off the reactor.** Compressing at a high level is slow: measured on
//! this project's 2-core machine (a release build compressing the file in
//! a loop), brotli quality 11 takes 35 ms for a 28 KiB minified
//! JavaScript file (jquery-ui's `sortable.min.js`) and 1.5 s for 1 MiB of
//! JavaScript; gzip -9 (zlib-rs) 0.5 ms and 35 ms. Any of that
//! on the reactor thread would stall every other connection of the worker
//! for as long, so the reactor never compresses: a request that misses
//! gets the identity response at once (with `Vary: Accept-Encoding`), and
//! the file goes to a [`Compressor`]
//! thread. Its result comes back through a channel and the reactor's alarm,
//! and is put in the cache on the reactor's next turn; from then on every
//! request that accepts the coding is a hit. The measured pause this
//! costs other clients is in README ("Compression").
//!
//! **Validators.** An entry is keyed by the request's path and coding,
//! and holds the identity file's validators (inode, size, mtime) it was
//! made from: a request whose file (revalidated as the file cache does,
//! every `--file-cache-valid`) has other validators finds no entry, and
//! the new version is compressed. The encoded representation's ETag is
//! the file's with the coding appended (`"…-br"`), distinct from the
//! identity's (RFC 9110 §8.8.3), and strong: the same file version gives
//! the same bytes (fixed levels, no timestamp in the gzip header).
//!
//! **Bounded.** The cache holds at most `--compress-cache-bytes` (this
//! worker's share): the compressed bytes, the keys, and a fixed overhead
//! per entry, least recently used out first. A body still being sent by a
//! response when its entry leaves stays charged until the response lets
//! go of it, so slow clients holding evicted bodies cannot take memory
//! past the bound. A file whose compressed form is not smaller than the
//! file is remembered as such (a few bytes), so it is not compressed
//! again until it changes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::wake::Alarm;
use slab::Slab;

use super::body::{FileMeta, FileRoute, FileSource};
use super::compressor::{Coding, Compressor, Done, Input};
use crate::http::validators::accepts_encoding;
use crate::stats::CompressOutcome;

/// A worker's on-the-fly compression: its cache, its compressor thread,
/// and what qualifies.
pub struct OnTheFly {
    cache: CompressCache,
    compressor: Compressor,
    /// `--compress-max-bytes`.
    max_bytes: u64,
    /// Scratch for a cache key: the request's key and a coding.
    key: Vec<u8>,
}

impl OnTheFly {
    /// Starts the compressor thread; `alarm` wakes this worker's reactor
    /// when a file is compressed.
    pub fn start(
        max_bytes: u64,
        cache_bytes: usize,
        alarm: Arc<Alarm>,
    ) -> std::io::Result<OnTheFly> {
        Ok(OnTheFly {
            cache: CompressCache::new(cache_bytes),
            compressor: Compressor::start(alarm)?,
            max_bytes,
            key: Vec::with_capacity(1024),
        })
    }

    /// Whether `found` may be compressed here: the file itself (not a
    /// precompressed variant), of a compressible type, not empty and
    /// within `--compress-max-bytes`. Its responses then vary with
    /// Accept-Encoding, whatever this client accepts.
    pub fn eligible(&self, found: &FileRoute) -> bool {
        found.encoding.is_none()
            && found.compressible
            && (1..=self.max_bytes).contains(&found.meta.len)
    }

    /// Swaps in the compressed representation of an eligible `found` in
    /// the first coding `accept` allows that the cache has; a coding
    /// allowed but not compressed yet is submitted to the compressor.
    /// `request_key` names the file (its decoded path and whether it was
    /// asked for as a directory). Returns what happened, for the counters
    /// (`None`: nothing to count, the file is being compressed already or
    /// is not worth it).
    pub fn select(
        &mut self,
        request_key: &[u8],
        accept: &[u8],
        found: &mut FileRoute,
    ) -> Option<CompressOutcome> {
        let mut outcome = None;
        for coding in Coding::PREFERRED {
            if !accepts_encoding(accept, coding.token().as_bytes()) {
                continue;
            }
            self.key.clear();
            self.key.extend_from_slice(request_key);
            self.key.push(coding as u8);
            match self.cache.get(&self.key, &found.meta) {
                Lookup::Hit(bytes) => {
                    found.source = FileSource::Compressed(bytes);
                    found.encoding = Some(coding.token());
                    return Some(CompressOutcome::Hit);
                }
                // Not worth it for this version, in any coding.
                Lookup::Identity => return outcome,
                Lookup::Miss if self.compressor.is_pending(&self.key) => {}
                Lookup::Miss => {
                    let input = match &found.source {
                        FileSource::Memory(bytes) => Input::Bytes(Arc::clone(bytes)),
                        FileSource::Shared(open) => Input::File(Arc::clone(open)),
                        // Not held by the fd budget: not shared with a thread.
                        FileSource::Open(_) | FileSource::Compressed(_) => return outcome,
                    };
                    if self.compressor.submit(&self.key, found.meta, coding, input) {
                        outcome = Some(CompressOutcome::Queued);
                    } else {
                        log::debug!("compressor queue full: a file goes uncompressed for now");
                        outcome = outcome.or(Some(CompressOutcome::Skipped));
                    }
                }
            }
        }
        outcome
    }

    /// Puts what the compressor finished in the cache; returns how many.
    pub fn take_done(&mut self) -> usize {
        let mut taken = 0;
        while let Some(Done {
            key,
            meta,
            body,
            took,
        }) = self.compressor.take_done()
        {
            log::debug!(
                "compressed {:?} ({}): {} -> {} bytes in {took:.1?}",
                String::from_utf8_lossy(&key[..key.len().saturating_sub(3)]),
                if key.last() == Some(&(Coding::Br as u8)) {
                    "br"
                } else {
                    "gzip"
                },
                meta.len,
                body.as_ref().map_or(meta.len as usize, |b| b.len()),
            );
            self.cache.insert(&key, meta, body);
            taken += 1;
        }
        taken
    }

    /// Bytes the cache charges now.
    pub fn cache_bytes(&self) -> usize {
        self.cache.charged()
    }
}

/// What the cache knows of a file version in one coding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The compressed bytes.
    Hit(Arc<[u8]>),
    /// This version is sent as it is: compressing did not make it smaller
    /// (or it could not be read whole).
    Identity,
    /// Not compressed yet, or made from another version of the file.
    Miss,
}

/// An entry's cost beyond its bytes and keys: the slab node, the map's
/// slot and the `Arc`'s counts, rounded up.
pub const ENTRY_OVERHEAD_BYTES: usize = 128;

struct Node {
    key: Box<[u8]>,
    /// The identity file's validators this was made from.
    meta: FileMeta,
    /// `None`: [`Lookup::Identity`].
    body: Option<Arc<[u8]>>,
    /// What the entry costs: bytes, keys, overhead.
    charge: usize,
    newer: Option<usize>,
    older: Option<usize>,
}

/// The compressed representations, bounded in bytes, least recently used
/// out first (a list through a slab: a hit moves its entry to the front
/// without allocating).
pub struct CompressCache {
    map: HashMap<Box<[u8]>, usize>,
    nodes: Slab<Node>,
    newest: Option<usize>,
    oldest: Option<usize>,
    /// Bodies that left the cache while responses still send them: each
    /// stays charged until only this list holds it.
    leaving: Vec<(Arc<[u8]>, usize)>,
    /// Bytes charged: every entry's, and the leaving bodies'.
    charged: usize,
    max_bytes: usize,
}

impl CompressCache {
    pub fn new(max_bytes: usize) -> CompressCache {
        CompressCache {
            map: HashMap::new(),
            nodes: Slab::new(),
            newest: None,
            oldest: None,
            leaving: Vec::new(),
            charged: 0,
            max_bytes,
        }
    }

    /// Bytes charged now (at most the bound).
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// The entry for `key` made from the file version `meta`. One made
    /// from another version is dropped: it will never be served again.
    pub fn get(&mut self, key: &[u8], meta: &FileMeta) -> Lookup {
        let Some(&i) = self.map.get(key) else {
            return Lookup::Miss;
        };
        if self.nodes[i].meta != *meta {
            self.remove(i);
            return Lookup::Miss;
        }
        self.unlink(i);
        self.push_newest(i);
        match &self.nodes[i].body {
            Some(body) => Lookup::Hit(Arc::clone(body)),
            None => Lookup::Identity,
        }
    }

    /// Stores what compressing `meta`'s version gave (`None`: send it as
    /// it is), evicting the least recently used entries to make room. A
    /// body that cannot fit even in an empty cache is remembered as
    /// [`Lookup::Identity`], so it is not compressed again and again.
    pub fn insert(&mut self, key: &[u8], meta: FileMeta, body: Option<Arc<[u8]>>) {
        if let Some(&i) = self.map.get(key) {
            self.remove(i);
        }
        self.reclaim();
        let keys = 2 * key.len() + ENTRY_OVERHEAD_BYTES;
        let body = body.filter(|b| b.len() + keys <= self.max_bytes);
        let charge = body.as_ref().map_or(0, |b| b.len()) + keys;
        while self.charged + charge > self.max_bytes {
            match self.oldest {
                Some(oldest) => self.remove(oldest),
                // Everything left is being sent: no room now.
                None => return,
            }
        }
        let i = self.nodes.insert(Node {
            key: key.into(),
            meta,
            body,
            charge,
            newer: None,
            older: None,
        });
        self.map.insert(key.into(), i);
        self.push_newest(i);
        self.charged += charge;
        debug_assert!(self.charged <= self.max_bytes);
    }

    /// Takes entry `i` out; its body stays charged while a response holds
    /// it.
    fn remove(&mut self, i: usize) {
        self.unlink(i);
        let node = self.nodes.remove(i);
        self.map.remove(&node.key);
        match node.body {
            Some(body) if Arc::strong_count(&body) > 1 => {
                // The keys' share is freed now; the bytes when sent.
                let keys = node.charge - body.len();
                self.charged -= keys;
                self.leaving.push((body, node.charge - keys));
            }
            _ => self.charged -= node.charge,
        }
    }

    /// Stops charging leaving bodies that no response holds any more.
    fn reclaim(&mut self) {
        let charged = &mut self.charged;
        self.leaving.retain(|(body, charge)| {
            let held = Arc::strong_count(body) > 1;
            if !held {
                *charged -= charge;
            }
            held
        });
    }

    fn unlink(&mut self, i: usize) {
        let (newer, older) = (self.nodes[i].newer, self.nodes[i].older);
        match newer {
            Some(n) => self.nodes[n].older = older,
            None => self.newest = older,
        }
        match older {
            Some(o) => self.nodes[o].newer = newer,
            None => self.oldest = newer,
        }
    }

    fn push_newest(&mut self, i: usize) {
        self.nodes[i].newer = None;
        self.nodes[i].older = self.newest;
        if let Some(n) = self.newest {
            self.nodes[n].newer = Some(i);
        }
        self.newest = Some(i);
        if self.oldest.is_none() {
            self.oldest = Some(i);
        }
    }
}

/// Whether responses of this media type (an essence such as
/// `text/javascript`) are worth compressing, from mime-db's flags.
pub fn compressible(content_type: &str) -> bool {
    compressible::is_compressible(content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: i64) -> FileMeta {
        FileMeta {
            ino: 1,
            len: 100,
            mtime: version,
            mtime_nsec: 0,
        }
    }

    fn body(n: usize) -> Option<Arc<[u8]>> {
        Some(Arc::from(vec![b'z'; n]))
    }

    /// What one entry of `n` bytes under a one-byte key costs.
    fn cost(n: usize) -> usize {
        n + 2 + ENTRY_OVERHEAD_BYTES
    }

    #[test]
    fn a_hit_needs_the_same_file_version() {
        let mut cache = CompressCache::new(10_000);
        assert_eq!(cache.get(b"a", &meta(1)), Lookup::Miss);
        cache.insert(b"a", meta(1), body(10));
        assert!(matches!(cache.get(b"a", &meta(1)), Lookup::Hit(b) if b.len() == 10));
        // The file changed: the old bytes go, whatever asks next.
        assert_eq!(cache.get(b"a", &meta(2)), Lookup::Miss);
        assert_eq!(cache.get(b"a", &meta(1)), Lookup::Miss);
        assert_eq!(cache.charged(), 0);
        cache.insert(b"a", meta(2), None);
        assert_eq!(cache.get(b"a", &meta(2)), Lookup::Identity);
    }

    #[test]
    fn bounded_in_bytes_least_recently_used_out() {
        let mut cache = CompressCache::new(3 * cost(100));
        for key in [b"a", b"b", b"c"] {
            cache.insert(key, meta(1), body(100));
        }
        assert_eq!(cache.charged(), 3 * cost(100));
        // `a` is used, so `b` is the least recently used when `d` comes.
        assert!(matches!(cache.get(b"a", &meta(1)), Lookup::Hit(_)));
        cache.insert(b"d", meta(1), body(100));
        assert_eq!(cache.get(b"b", &meta(1)), Lookup::Miss);
        for key in [b"a", b"c", b"d"] {
            assert!(matches!(cache.get(key, &meta(1)), Lookup::Hit(_)));
        }
        // A large one pushes out as many as it needs.
        cache.insert(b"e", meta(1), body(2 * cost(100) + 50));
        assert_eq!(cache.get(b"a", &meta(1)), Lookup::Miss);
        assert_eq!(cache.get(b"c", &meta(1)), Lookup::Miss);
        assert!(cache.charged() <= 3 * cost(100));
        // One that cannot fit at all is remembered as not worth it.
        cache.insert(b"f", meta(1), body(10 * cost(100)));
        assert_eq!(cache.get(b"f", &meta(1)), Lookup::Identity);
        assert!(cache.charged() <= 3 * cost(100));
    }

    #[test]
    fn a_body_being_sent_stays_charged_until_it_is_let_go() {
        let mut cache = CompressCache::new(2 * cost(100));
        cache.insert(b"a", meta(1), body(100));
        let Lookup::Hit(sending) = cache.get(b"a", &meta(1)) else {
            panic!("a hit")
        };
        cache.insert(b"b", meta(1), body(100));
        // `a` must leave for `c`, but a response holds its bytes: they
        // stay charged, and `c` pushes out `b` instead of going past.
        cache.insert(b"c", meta(1), body(100));
        assert!(cache.charged() <= 2 * cost(100), "{}", cache.charged());
        assert_eq!(cache.get(b"a", &meta(1)), Lookup::Miss);
        assert_eq!(cache.get(b"b", &meta(1)), Lookup::Miss);
        assert!(matches!(cache.get(b"c", &meta(1)), Lookup::Hit(_)));
        // Sent: the next insert finds the room.
        drop(sending);
        cache.insert(b"d", meta(1), body(100));
        assert!(matches!(cache.get(b"c", &meta(1)), Lookup::Hit(_)));
        assert!(matches!(cache.get(b"d", &meta(1)), Lookup::Hit(_)));
        assert_eq!(cache.charged(), 2 * cost(100));
    }

    #[test]
    fn text_is_compressible_and_binary_is_not() {
        for text in [
            "text/html",
            "text/css",
            "text/javascript",
            "application/javascript",
            "application/json",
            "image/svg+xml",
            "application/xml",
            "application/wasm",
        ] {
            assert!(compressible(text), "{text}");
        }
        for binary in [
            "image/png",
            "image/jpeg",
            "application/zip",
            "application/gzip",
            "font/woff2",
            "video/mp4",
            "application/octet-stream",
        ] {
            assert!(!compressible(binary), "{binary}");
        }
    }
}
