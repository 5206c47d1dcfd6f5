//! Finding the file a request names: decoding its path, the small-file
//! and fd cache in front of the filesystem (revalidated like nginx's
//! `open_file_cache`), `index.html` and listings for directories,
//! precompressed siblings (`FILE.br`, `FILE.gz`), and the choice of a
//! representation compressed on the fly. Every open goes through
//! [`Root::open_beneath`] (`openat2` with RESOLVE_BENEATH): neither `..`
//! nor a symlink leaves ROOT.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::ServerView;
use super::body::{FileMeta, FileRoute, FileSource, Validators};
use super::cache::{Content, FileCache, Lookup};
use super::compress::{self, OnTheFly};
use super::disk;
use super::hashes::ContentHashes;
use super::route::Route;
use super::settings::{Settings, SiteRef};
use crate::config::SiteOptions;
use crate::fault;
use crate::files::{OpenFiles, Root, content_type};
use crate::http::Status;
use crate::http::request::RequestHead;
use crate::http::target::{PathInfo, decode_path, path_from_rooted};
use crate::http::validators::accepts_encoding;

/// The sites' ROOTs and what stands in front of them: the file cache, the
/// shared file fds, on-the-fly compression (both caches key on the ROOT's
/// device and inode as well as the path). The scratch buffers are one lookup's own:
/// filled and read within [`Files::lookup`], never between calls.
pub struct Files {
    /// The sites' ROOTs, each held once however many sites serve it.
    roots: Vec<Served>,
    /// Each site's ROOT (an index in `roots`), in the order of
    /// [`Settings::sites`].
    site_roots: Vec<usize>,
    /// The ROOT this lookup is beneath (an index in `roots`).
    current: usize,
    cache: FileCache,
    /// On-the-fly compression; `None` with `--no-compress`.
    compression: Option<OnTheFly>,
    /// File fds held for bodies (by responses in flight and the cache):
    /// what the fd budget charges for files.
    pub open_files: OpenFiles,
    /// The decoded path being looked up (beneath ROOT).
    path: Vec<u8>,
    /// `openat2`'s NUL-terminated copy of `path`.
    name: Vec<u8>,
    /// The file cache's key for this lookup.
    cache_key: Vec<u8>,
    /// The compression cache's key: the decoded path asked for and
    /// whether it was asked for as a directory.
    compress_key: Vec<u8>,
    /// Opens refused for want of an fd since [`Files::take_fd_shortages`]
    /// last took them, for the reactor's `open_emfile` counter.
    fd_shortages: u64,
    /// `--etag hash`: the content hashes (process-wide); `None`: nginx's
    /// mtime-size tags.
    pub hashes: Option<&'static ContentHashes>,
    /// The validators of the version last found in the cache (or last
    /// formatted): the cache made them once, and they travel here rather
    /// than in every [`FileRoute`] moved from lookup to response.
    validators: Option<(FileMeta, Validators)>,
}

/// A site's ROOT, held open.
struct Served {
    root: Root,
    /// Its path could not be resolved at the last look (logged once
    /// until it can).
    lost: bool,
}

/// Whether a lookup may choose a representation compressed on the fly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// The request's own file (or its fallback): yes, by its
    /// Accept-Encoding.
    ByAcceptEncoding,
    /// An error page: served as it is.
    Never,
}

impl Files {
    /// `root`: the default site's ROOT (see [`Files::set_roots`] for the
    /// others).
    pub fn new(root: Root, cache: FileCache, compression: Option<OnTheFly>) -> Files {
        Files {
            roots: vec![Served { root, lost: false }],
            site_roots: vec![0],
            current: 0,
            cache,
            compression,
            open_files: OpenFiles::default(),
            path: Vec::with_capacity(1024),
            name: Vec::with_capacity(1024),
            cache_key: Vec::with_capacity(1024),
            compress_key: Vec::with_capacity(1024),
            fd_shortages: 0,
            hashes: None,
            validators: None,
        }
    }

    /// Opens refused for want of an fd (EMFILE, ENFILE) since the last
    /// call.
    pub fn take_fd_shortages(&mut self) -> u64 {
        std::mem::take(&mut self.fd_shortages)
    }

    /// Looks at every ROOT's path again (see [`Root::follow`]): after a
    /// deploy flipped one, new requests are served from the new directory
    /// and the file cache starts empty; responses under way finish from
    /// the files they hold.
    pub fn follow_root(&mut self) {
        let mut flipped = false;
        for served in &mut self.roots {
            let result = served.root.follow();
            let lost = result.is_err();
            let path = served.root.path().display();
            match result {
                Ok(false) => {}
                Ok(true) => {
                    flipped = true;
                    log::info!("ROOT now names {path}: serving it (the file cache starts again)");
                }
                Err(e) if !served.lost => {
                    log::warn!("ROOT cannot be resolved ({e}): still serving {path}")
                }
                Err(_) => {}
            }
            if served.lost && !lost {
                log::info!("ROOT {path} resolves again");
            }
            served.lost = lost;
        }
        if flipped {
            self.cache.clear();
        }
    }

    /// The sites' ROOTs, in site order (at start, and on a reload). A
    /// ROOT held already (by its configured path) is kept, a new one
    /// opened; if one cannot be, nothing changes and the error names the
    /// path.
    pub fn set_roots<'a>(
        &mut self,
        paths: impl Iterator<Item = &'a Path>,
        follow_outside: bool,
    ) -> Result<(), (PathBuf, io::Error)> {
        enum Found {
            /// Held already: its index in `self.roots`.
            Held(usize),
            Opened(Root),
        }
        // Each distinct path once.
        let mut distinct: Vec<(&Path, Found)> = Vec::new();
        let mut site_roots = Vec::new();
        for path in paths {
            let index = match distinct.iter().position(|(p, _)| *p == path) {
                Some(i) => i,
                None => {
                    let held = self.roots.iter().position(|s| s.root.given() == path);
                    let root = match held {
                        Some(i) => Found::Held(i),
                        None => Found::Opened(
                            Root::open(path, follow_outside)
                                .map_err(|e| (path.to_path_buf(), e))?,
                        ),
                    };
                    distinct.push((path, root));
                    distinct.len() - 1
                }
            };
            site_roots.push(index);
        }
        let mut old: Vec<Option<Served>> = std::mem::take(&mut self.roots)
            .into_iter()
            .map(Some)
            .collect();
        self.roots = distinct
            .into_iter()
            .map(|(_, root)| match root {
                // Held ROOTs have distinct paths: each index comes once.
                Found::Held(i) => old[i].take().expect("each held ROOT is taken once"),
                Found::Opened(root) => Served { root, lost: false },
            })
            .collect();
        self.site_roots = site_roots;
        self.current = 0;
        Ok(())
    }

    /// The fds the budget charges for files: those held for bodies (by
    /// responses in flight and the cache), and the sites' ROOTs past the
    /// first (which the reserve holds).
    pub fn fds_charged(&self) -> usize {
        self.open_files.count() + self.roots.len().saturating_sub(1)
    }

    /// The default site's directory.
    pub fn root_path(&self) -> &std::path::Path {
        self.roots[0].root.path()
    }

    /// The ROOT this lookup is beneath.
    fn root(&self) -> &Root {
        &self.roots[self.current].root
    }

    /// The route of a GET or HEAD for `target` (the request's, or a
    /// fallback or error page): a file beneath ROOT, a redirect to add a
    /// directory's slash, a listing, or an error.
    pub fn lookup<'t>(
        &mut self,
        at: SiteRef<'_>,
        head: &RequestHead<'_>,
        target: Target<'t>,
        compression: Compression,
        server: &mut ServerView<'_>,
        now: Instant,
    ) -> Route<'t> {
        self.current = self.site_roots.get(at.index).copied().unwrap_or(0);
        let (settings, options) = (at.settings, &at.site().options);
        let mut route = self.find(settings, options, head, target, server, now);
        // --etag hash: the file's (or variant's) version is asked for
        // here, before a compressed representation replaces its bytes.
        if let (Route::File(found), Some(hashes)) = (&route, self.hashes) {
            let _ = hashes.tag(found);
        }
        if let (Route::File(found), Compression::ByAcceptEncoding) = (&mut route, compression) {
            self.choose_compressed(head.accept_encoding, found, server);
        }
        route
    }

    fn find<'t>(
        &mut self,
        settings: &Settings,
        options: &SiteOptions,
        head: &RequestHead<'_>,
        Target {
            target,
            asked,
            rooted,
        }: Target<'t>,
        server: &ServerView<'_>,
        now: Instant,
    ) -> Route<'t> {
        // --clean-urls is on (`Some`), and may redirect (`Some(true)`).
        let clean = options.clean_urls.then_some(asked);
        let decoded = match rooted {
            Some((rooted, info)) => {
                path_from_rooted(&info, rooted, &mut self.path);
                Ok(info)
            }
            None => decode_path(target, &mut self.path),
        };
        let info = match decoded {
            Ok(info) => info,
            Err(status) => return Route::Error(status),
        };
        if info.has_dot_segment && !options.dotfiles {
            return Route::Error(Status::NotFound);
        }
        let query = || target.find('?').map_or("", |i| &target[i..]);
        if clean == Some(true)
            && let Some(path) = without_html(info.raw_path)
        {
            // `/about.html` is `/about`, `/docs/index.html` is `/docs/`.
            return Route::Clean {
                path,
                query: query(),
            };
        }
        self.compress_key.clear();
        let (dev, ino) = self.root().id();
        self.compress_key.extend_from_slice(&dev.to_ne_bytes());
        self.compress_key.extend_from_slice(&ino.to_ne_bytes());
        self.compress_key.extend_from_slice(&self.path);
        self.compress_key.push(0); // cannot occur in a decoded path
        self.compress_key.push(u8::from(info.trailing_slash));
        if self.cache.enabled() {
            self.cache_key(options, info.trailing_slash, head.accept_encoding);
            if let Some(hit) = self.cached(now) {
                return hit;
            }
        }
        let (mut file, mut meta) = match self.open(true) {
            Ok(found) => found,
            // `/about` is about.html; `/about/` without a directory is
            // `/about` if about.html is there.
            Err(Status::NotFound) if clean.is_some() && !self.path.is_empty() => {
                match self.html_sibling() {
                    Some(_) if info.trailing_slash => match clean {
                        Some(true) => {
                            return Route::Clean {
                                path: &info.raw_path[..info.raw_path.len() - 1],
                                query: query(),
                            };
                        }
                        _ => return Route::Error(Status::NotFound),
                    },
                    Some(found) => found,
                    None => return Route::Error(Status::NotFound),
                }
            }
            Err(status) => return Route::Error(status),
        };
        if meta.is_dir() && !info.trailing_slash && clean.is_some() {
            // about.html before the directory about/ (an export with
            // about.html and about/team.html).
            if let Some(found) = self.html_sibling() {
                (file, meta) = found;
            }
        }
        let was_dir = meta.is_dir();
        if was_dir {
            if !info.trailing_slash {
                // RFC 9110 §15.4.2; keep the query, as a browser would.
                return Route::AddSlash {
                    path: info.raw_path,
                    query: query(),
                };
            }
            let dir_len = self.path.len();
            if !self.path.is_empty() {
                self.path.push(b'/');
            }
            self.path.extend_from_slice(b"index.html");
            (file, meta) = match self.open(false) {
                Ok(found) => found,
                // `/blog/` without an index is `/blog` if blog.html is
                // there.
                Err(Status::NotFound) if clean == Some(true) && dir_len > 0 => {
                    self.path.truncate(dir_len);
                    if self.html_sibling().is_some() {
                        return Route::Clean {
                            path: &info.raw_path[..info.raw_path.len() - 1],
                            query: query(),
                        };
                    }
                    if options.listing {
                        return Route::Listing(file);
                    }
                    return Route::Error(Status::NotFound);
                }
                Err(Status::NotFound) if options.listing => {
                    self.path.truncate(dir_len);
                    return Route::Listing(file);
                }
                Err(status) => return Route::Error(status),
            };
        }
        if !meta.is_file() {
            return Route::Error(Status::Forbidden);
        }
        if info.trailing_slash && !was_dir {
            // `/file.txt/` names a directory that does not exist (ENOTDIR).
            return Route::Error(Status::NotFound);
        }
        let (content_type, charset) = content_type(&self.path);
        let mut found = FileRoute {
            source: FileSource::Open(file),
            meta: FileMeta::from(&meta),
            content_type,
            charset,
            encoding: None,
            vary: false,
            compressible: self.compression.is_some() && compress::compressible(content_type),
        };
        if options.precompressed && charset {
            // Text-like types may have precompressed siblings; caches must
            // key on Accept-Encoding whether or not this client gets one.
            found.vary = true;
            if let Some(accept) = head.accept_encoding {
                self.choose_precompressed(accept, &mut found);
            }
        }
        self.remember(settings, found, server, now)
    }

    /// Swaps in FILE.br or FILE.gz when it exists as a regular file and the
    /// client accepts its coding (brotli first: smaller).
    fn choose_precompressed(&mut self, accept: &[u8], found: &mut FileRoute) {
        let plain_len = self.path.len();
        for (coding, suffix) in [("br", &b".br"[..]), ("gzip", b".gz")] {
            if !accepts_encoding(accept, coding.as_bytes()) {
                continue;
            }
            self.path.extend_from_slice(suffix);
            let opened = self.open(false);
            self.path.truncate(plain_len);
            if let Ok((file, meta)) = opened
                && meta.is_file()
            {
                found.source = FileSource::Open(file);
                found.meta = FileMeta::from(&meta);
                found.encoding = Some(coding);
                return;
            }
        }
    }

    /// `self.path` + `.html`, opened, if it is a file (`--clean-urls`);
    /// otherwise `self.path` is left as it was.
    fn html_sibling(&mut self) -> Option<(File, std::fs::Metadata)> {
        if self.path.ends_with(b".html") {
            return None;
        }
        let len = self.path.len();
        self.path.extend_from_slice(b".html");
        match self.open(false) {
            Ok(found) if found.1.is_file() => Some(found),
            _ => {
                self.path.truncate(len);
                None
            }
        }
    }

    /// Opens `self.path` beneath ROOT and reads its metadata.
    fn open(&mut self, allow_dir: bool) -> Result<(File, std::fs::Metadata), Status> {
        fault::eio_at(fault::Point::Open, &self.path)
            .map_err(|e| disk::open_failed(&e, self.root()))?;
        let file = match self.roots[self.current]
            .root
            .open_beneath(&self.path, &mut self.name)
        {
            Ok(file) => file,
            Err(e) => {
                self.fd_shortages += u64::from(disk::out_of_fds(&e));
                return Err(disk::open_failed(&e, self.root()));
            }
        };
        let meta = file.metadata().map_err(|e| disk::read_failed(&e))?;
        disk::opened();
        if meta.is_dir() && !allow_dir {
            return Err(Status::NotFound);
        }
        Ok((file, meta))
    }
}

/// The caches in front of ROOT: small files and fds kept between
/// requests (revalidated once `--file-cache-valid` is up), the fd budget
/// they are charged to, and the compressed representations.
impl Files {
    /// The cache key of a request: its decoded path, whether it ended in
    /// `/` (an index), and which precompressed codings it accepts.
    fn cache_key(
        &mut self,
        options: &SiteOptions,
        trailing_slash: bool,
        accept_encoding: Option<&[u8]>,
    ) {
        self.cache_key.clear();
        let (dev, ino) = self.root().id();
        self.cache_key.extend_from_slice(&dev.to_ne_bytes());
        self.cache_key.extend_from_slice(&ino.to_ne_bytes());
        self.cache_key.extend_from_slice(&self.path);
        self.cache_key.push(0); // cannot occur in a decoded path
        let accepts = |coding: &[u8]| {
            options.precompressed && accept_encoding.is_some_and(|ae| accepts_encoding(ae, coding))
        };
        let class = u8::from(trailing_slash)
            | u8::from(accepts(b"br")) << 1
            | u8::from(accepts(b"gzip")) << 2;
        self.cache_key.push(class);
    }

    /// A file just opened goes into the cache and is served from it: a
    /// small one's bytes, or a large one's fd (when the fd budget has room
    /// to keep it; otherwise it stays this request's own).
    fn remember<'t>(
        &mut self,
        settings: &Settings,
        mut found: FileRoute,
        server: &ServerView<'_>,
        now: Instant,
    ) -> Route<'t> {
        if !self.cache.enabled() {
            return Route::File(found);
        }
        let FileSource::Open(file) = &found.source else {
            return Route::File(found);
        };
        let content = if found.meta.len <= settings.small_file_bytes {
            let mut bytes = vec![0u8; found.meta.len as usize];
            let read = fault::eio_at(fault::Point::Read, &self.path)
                .and_then(|()| std::os::unix::fs::FileExt::read_exact_at(file, &mut bytes, 0));
            match read {
                Ok(()) => disk::read(),
                Err(e) => return Route::Error(disk::read_failed(&e)),
            }
            Content::Bytes(bytes.into())
        } else if self.file_room(server) {
            match std::mem::replace(&mut found.source, FileSource::Memory(Arc::from(&[][..]))) {
                FileSource::Open(file) => Content::Fd(self.open_files.adopt(file)),
                other => {
                    found.source = other;
                    return Route::File(found);
                }
            }
        } else {
            return Route::File(found);
        };
        found.source = match &content {
            Content::Bytes(bytes) => FileSource::Memory(Arc::clone(bytes)),
            Content::Fd(open) => FileSource::Shared(Arc::clone(open)),
        };
        let plain_len = self.path.len();
        match found.encoding {
            Some("br") => self.path.extend_from_slice(b".br"),
            Some(_) => self.path.extend_from_slice(b".gz"),
            None => {}
        }
        self.cache.insert(
            &self.cache_key,
            content,
            found.meta,
            &self.path,
            found.content_type,
            found.charset,
            found.encoding,
            found.vary,
            found.compressible,
            now,
        );
        self.path.truncate(plain_len);
        Route::File(found)
    }

    /// The `ETag` and `Last-Modified` of the version `meta` describes:
    /// the cache's when it just gave that version, else formatted now.
    pub fn validators(&mut self, meta: &FileMeta) -> Validators {
        match self.validators {
            Some((known, validators)) if known == *meta => validators,
            _ => {
                let validators = meta.validators();
                self.validators = Some((*meta, validators));
                validators
            }
        }
    }

    /// May one more file fd be held for a body? When the budget is full, a
    /// cached fd that no response uses is closed first to make room.
    pub fn file_room(&mut self, server: &ServerView<'_>) -> bool {
        loop {
            let open = self.fds_charged();
            if server
                .budget
                .has_file_room(server.gauges.connections(), open)
            {
                return true;
            }
            if !self.cache.release_unused_fd() {
                return false;
            }
        }
    }

    /// Closes one cached file fd that no response is using, for the
    /// reactor's admission; returns whether one was closed.
    pub fn release_unused_fd(&mut self) -> bool {
        self.cache.release_unused_fd()
    }

    /// Closes cached file fds that no response has used for a while.
    pub fn sweep_open_files(&mut self, now: Instant) {
        if self.cache.fd_entries() > 0 {
            self.cache.sweep(now);
        }
    }

    /// A cache hit, revalidated first when its time is up.
    fn cached<'t>(&mut self, now: Instant) -> Option<Route<'t>> {
        let entry = match self.cache.lookup(&self.cache_key, now) {
            Lookup::Miss => return None,
            Lookup::Fresh(entry) => entry,
            Lookup::Stale(entry) => {
                let unchanged = self.roots[self.current]
                    .root
                    .open_beneath(&entry.served_path, &mut self.name)
                    .and_then(|f| f.metadata())
                    .is_ok_and(|m| m.is_file() && FileMeta::from(&m) == entry.meta);
                if !unchanged {
                    self.cache.remove(&self.cache_key);
                    return None;
                }
                self.cache.revalidated(&self.cache_key, now);
                entry
            }
        };
        self.validators = Some((entry.meta, entry.validators));
        let source = match entry.content {
            Content::Bytes(bytes) => FileSource::Memory(bytes),
            Content::Fd(open) => FileSource::Shared(open),
        };
        Some(Route::File(FileRoute {
            source,
            meta: entry.meta,
            content_type: entry.content_type,
            charset: entry.charset,
            encoding: entry.encoding,
            vary: entry.vary,
            compressible: entry.compressible,
        }))
    }

    /// On-the-fly compression ([`compress`]): the compressed
    /// representation when the cache has it in a coding the client
    /// accepts; otherwise the file goes to the compressor and this
    /// response is the identity one.
    fn choose_compressed(
        &mut self,
        accept_encoding: Option<&[u8]>,
        found: &mut FileRoute,
        server: &mut ServerView<'_>,
    ) {
        if !self.compression.as_ref().is_some_and(|c| c.eligible(found)) {
            return;
        }
        found.vary = true;
        let Some(accept) = accept_encoding else {
            return;
        };
        if matches!(found.source, FileSource::Open(_)) && self.file_room(server) {
            // Not cached (the file cache is off or full): charge its fd,
            // so that it can be shared with the compressor.
            let empty = FileSource::Memory(Arc::from(&[][..]));
            if let FileSource::Open(file) = std::mem::replace(&mut found.source, empty) {
                found.source = FileSource::Shared(self.open_files.adopt(file));
            }
        }
        let outcome = self
            .compression
            .as_mut()
            .and_then(|c| c.select(&self.compress_key, accept, found));
        if let Some(outcome) = outcome {
            server.stats.count_compression(outcome, 1);
        }
    }

    /// The compressor woke the reactor: its results go in the cache.
    /// Returns how many files it finished.
    pub fn take_compressed(&mut self) -> usize {
        self.compression.as_mut().map_or(0, |c| c.take_done())
    }
}

/// What a lookup is for: a target, and whether the client asked for it
/// (not rewritten, not a fallback or error page), so that a
/// `--clean-urls` redirect may point at it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'t> {
    target: &'t str,
    asked: bool,
    /// Its path as the path rules decoded it (rooted), and what the
    /// decoding learned, so that it is not decoded twice.
    rooted: Option<(&'t [u8], PathInfo<'t>)>,
}

impl<'t> Target<'t> {
    /// The request's own target.
    pub fn asked(target: &'t str) -> Target<'t> {
        Target {
            target,
            asked: true,
            rooted: None,
        }
    }

    /// A rewrite's, a fallback's, an error page's.
    pub fn other(target: &'t str) -> Target<'t> {
        Target {
            target,
            asked: false,
            rooted: None,
        }
    }

    /// The same, whose path the rules decoded already (with its leading
    /// `/`, and what decoding learned; `None` when they did not).
    pub fn decoded(self, rooted: Option<(&'t [u8], PathInfo<'t>)>) -> Target<'t> {
        Target { rooted, ..self }
    }
}

/// The clean URL of a raw path that ends in `.html` (`--clean-urls`):
/// `/about.html` is `/about`, `/docs/index.html` is `/docs/`; `None` for
/// any other path, and for a name that is only `.html`.
fn without_html(raw_path: &str) -> Option<&str> {
    let stem = raw_path.strip_suffix(".html")?;
    match stem.strip_suffix("index") {
        Some(dir) if dir.ends_with('/') => Some(dir),
        _ if stem.ends_with('/') || stem.is_empty() => None,
        _ => Some(stem),
    }
}

#[cfg(test)]
mod tests {
    use super::without_html;

    #[test]
    fn clean_urls_drop_html_and_index_html() {
        assert_eq!(without_html("/about.html"), Some("/about"));
        assert_eq!(without_html("/a/b.c.html"), Some("/a/b.c"));
        assert_eq!(without_html("/docs/index.html"), Some("/docs/"));
        assert_eq!(without_html("/index.html"), Some("/"));
        assert_eq!(without_html("/myindex.html"), Some("/myindex"));
        for kept in [
            "/about",
            "/about.htm",
            "/.html",
            "/docs/.html",
            "/about.html/",
            "",
        ] {
            assert_eq!(without_html(kept), None, "{kept}");
        }
    }
}
