//! The memory half of the resource budget: the most heap the server can
//! hold, as a formula of its limits.
//!
//! The fd budget ([`crate::budget`]) bounds how many connections there
//! are; this module bounds what each may cost, so that no client, however
//! it behaves (never reads, pipelines without reading, asks for sixteen
//! ranges of a huge file, asks for the listing of a huge directory), can
//! make the server hold more than
//!
//! ```text
//! max_connections x (tables + work)  +  file cache  +  fixed
//!
//! tables  = the connection's slab entry, timer and eviction links
//! work    = the buffers a working connection borrows from the pool:
//!           input, and a head held while its chunked body is read
//!           (--max-header-bytes each)
//!           + output: at most 2 x (OUTPUT_CAP + largest in-memory reply),
//!             2 for a Vec's doubling growth
//! largest in-memory reply
//!         = a response head (with a Location of --max-uri-bytes)
//!           + the largest body built in memory: a small file or the
//!             ranges of one (--small-file-bytes, with multipart framing
//!             for up to 16 ranges), a listing (--listing; capped), the
//!             status page, whichever is largest
//! file cache = --file-cache-entries x (--small-file-bytes + its keys)
//! fixed   = one reactor's scratch buffers, and its timer wheel's slots
//!
//! with on-the-fly compression (the default), also:
//!   --compress-cache-bytes  +  workers x compressor
//! compressor = one file being compressed (read whole, and its output)
//!           + the results waiting for the reactor
//!           + brotli's state at quality 11 for a window that fits
//!             --compress-max-bytes (measured: ~12 bytes per window byte)
//!           + the small files its queue holds
//!
//! with a TLS listener, also:
//!   max_connections x tls  +  --tls-session-cache x a stored session
//! tls     = rustls's state for one connection, and its record buffers
//!           (lent by a pool while it works: incoming, a handshake
//!           message of up to 64 KiB while one is being joined, else a
//!           record; decrypted plaintext not yet read; encrypted records
//!           not yet sent, at most SEND_BUFFER_LIMIT of plaintext), each
//!           doubled for growth
//! ```
//!
//! What keeps each term bounded: answers to pipelined requests stop while
//! [`OUTPUT_CAP`] bytes are buffered; files larger than
//! `--small-file-bytes` are never read into memory but sent with sendfile,
//! including every part of a multipart/byteranges body (see
//! [`crate::serve::FileBody`]); listings are capped; an idle connection
//! holds no buffers, and the pool holds only buffers once lent (so never
//! more sets than the most connections that worked at once).
//!
//! Not counted: the kernel's socket buffers (bounded by `tcp_wmem` and
//! `tcp_rmem` per socket, and freed at once for a stalled response that
//! is evicted or times out, whose close is an RST), and the page cache.
//! `tests/memory.rs` measures the heap of a server under every kind of
//! hostile client against this formula.

use crate::config::Config;
use crate::conn::Conn;
use crate::http::session::OUTPUT_CAP;
use crate::http::validators::MAX_RANGES;
use crate::serve::FileBody;
/// What a working connection borrows from the pool.
type Work = crate::http::session::Exchange<FileBody>;
use crate::serve::MAX_GENERATED_BYTES;

/// A response head without its Location and Cache-Control values: every
/// header holdline may send, with room to spare.
const HEAD_BYTES: usize = 1024;

/// The framing of one multipart/byteranges part (delimiter, Content-Type,
/// Content-Range), at most.
const PART_FRAMING_BYTES: usize = 256;

/// The status page (text, Prometheus, per-worker lines), at most.
const STATUS_PAGE_BYTES: usize = 16 * 1024;

/// The timer wheel's and the eviction queues' share per connection: their
/// entries (reserved for the whole budget) and a slot's key, doubled for
/// a Vec's growth.
const TABLE_LINK_BYTES: usize = 128;

/// The largest incoming record buffer: a handshake message being joined
/// (rustls's MAX_HANDSHAKE_SIZE), plus a record read past it.
const TLS_INCOMING_BYTES: usize = 64 * 1024 + 4096;

/// Decrypted plaintext waiting to be read: the records of one incoming
/// buffer.
const TLS_PLAINTEXT_BYTES: usize = 16 * 1024 + 16 * 1024 + 256;

/// The connection's keys, transcript and boxed record protection, beside
/// the connection struct (measured: 2.2 KiB of heap in all for an idle
/// TLS 1.3 connection, `tests/memory.rs`).
const TLS_STATE_BYTES: usize = 4096;

/// One stored TLS session in the session cache, with its id and the map's
/// overhead, at most.
const TLS_SESSION_BYTES: usize = 1024;

/// The figures of the formula, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBound {
    pub connections: usize,
    /// A connection's tables, held whether it works or idles.
    pub tables_per_connection: usize,
    /// What a working connection borrows from the pool, at most.
    pub work_per_connection: usize,
    pub file_cache: usize,
    /// Scratch buffers, and the `--etag hash` table of hashed versions.
    pub fixed: usize,
    /// rustls's state per connection, at most; 0 without a TLS listener.
    pub tls_per_connection: usize,
    /// The TLS session cache, at most; 0 without a TLS listener.
    pub tls_sessions: usize,
    /// Access-log lines waiting for the disk and the buffers they are
    /// formatted into; 0 without `--access-log`.
    pub access_log: usize,
    /// The compressed-file cache (bodies still being sent included);
    /// 0 with `--no-compress`.
    pub compress_cache: usize,
    /// Every worker's compressor thread at work; 0 with `--no-compress`.
    pub compressors: usize,
    /// Every worker's request-rate table (with `--client-rate`; the
    /// connections-per-client table is a per-connection term) and
    /// credential cache (with an `auth` rule).
    pub clients: usize,
    /// The ACME manager: every `--acme` site's certificate and its
    /// placeholder, and one conversation with the CA; 0 without one.
    pub acme: usize,
}

impl MemoryBound {
    /// The bound for `config` with `connections` admitted at most.
    ///
    /// Every sum and product saturates: a limit no machine could meet
    /// (`--max-uri-bytes 18446744073709551615` is a valid value) makes the
    /// bound read as `usize::MAX`, not wrap to a small number or panic on
    /// a reload that logs it.
    pub fn compute(config: &Config, connections: usize) -> MemoryBound {
        let (fixed, live) = (&config.fixed, &config.live);
        let small_file_bytes = usize::try_from(fixed.small_file_bytes).unwrap_or(usize::MAX);
        let workers = fixed.workers.max(1);
        // The site whose responses carry the most bytes of options.
        let site_head = |site: &crate::config::SiteOptions| {
            sum([
                site.cache_control.as_ref().map_or(0, String::len),
                site.headers.iter().map(|h| h.len() + 2).sum::<usize>(),
            ])
        };
        let options = live.all_sites().map(site_head).max().unwrap_or(0);
        let head = sum([HEAD_BYTES, live.max_uri_bytes, options]);
        let file_reply = sum([small_file_bytes, MAX_RANGES * PART_FRAMING_BYTES, 64]);
        let generated = if live.all_sites().any(|site| site.listing) {
            MAX_GENERATED_BYTES
        } else {
            0
        };
        let largest_reply = sum([head, file_reply.max(generated).max(STATUS_PAGE_BYTES)]);
        let output = times(2, sum([OUTPUT_CAP, largest_reply])).max(4096);
        // Input, and a head held while its chunked body is read: each at
        // most --max-header-bytes.
        let work = sum([
            std::mem::size_of::<Work>(),
            times(2, fixed.max_header_bytes),
            output,
        ]);
        // Its slab entry, its links in the wheel and the eviction queues,
        // and its share of the connections-per-client table.
        let tables = std::mem::size_of::<Conn>()
            + TABLE_LINK_BYTES
            + crate::clients::Connections::bytes_per_connection();
        // A cached file: its bytes, its key and served path (each up to a
        // decoded target), and the key again in the eviction order.
        let cache_entry = sum([
            small_file_bytes,
            times(4, sum([live.max_uri_bytes, 16])),
            256,
        ]);
        let file_cache = times(fixed.file_cache_entries, cache_entry);
        // The reactor's scratch: the generated-body buffer, paths and
        // names, the event list.
        let scratch = sum([
            generated.max(STATUS_PAGE_BYTES),
            times(4, live.max_uri_bytes),
            64 * 1024,
            crate::wheel::PREALLOCATED_BYTES,
        ]);
        let (tls_per_connection, tls_sessions) = if fixed.tls_listen.is_empty() {
            (0, 0)
        } else {
            let sending = 2 * (crate::tls::SEND_BUFFER_LIMIT + 1024);
            let buffers = 2 * (TLS_INCOMING_BYTES + TLS_PLAINTEXT_BYTES) + sending;
            (
                std::mem::size_of::<crate::tls::Tls>() + TLS_STATE_BYTES + buffers,
                times(fixed.tls_session_cache, TLS_SESSION_BYTES),
            )
        };
        let access_log = match live.access_log {
            None => 0,
            // The buffers that travel to the writer (each kept at most
            // BUF_KEEP), and each worker's own: a flush's worth and one
            // line more (a target, a Referer and a User-Agent, each
            // escaped to at most 4 bytes a byte).
            Some(_) => {
                use crate::accesslog::{BUF_KEEP, FLUSH_AT, SLOTS};
                let escaped = sum([live.max_uri_bytes, times(2, fixed.max_header_bytes)]);
                let line = sum([times(4, escaped), 512]);
                sum([
                    times(SLOTS, sum([BUF_KEEP, line])),
                    times(workers, sum([FLUSH_AT, line])),
                ])
            }
        };
        let (compress_cache, compressors) = if fixed.compress && fixed.compress_cache_bytes > 0 {
            let one = crate::serve::compressor::working_bytes(
                fixed.compress_max_bytes,
                fixed.small_file_bytes,
            );
            (fixed.compress_cache_bytes, times(workers, one))
        } else {
            (0, 0)
        };
        use crate::clients::Rates;
        let client_rates = match live.client_rate > 0.0 {
            false => 0,
            // One table, every worker's.
            true => Rates::bytes_for(fixed.client_table_entries),
        };
        // With an auth rule, every worker's credential cache.
        let auth_rules = live
            .all_sites()
            .any(|site| site.rules.iter().any(|r| r.action.users().is_some()));
        let auth = match auth_rules {
            false => 0,
            true => times(
                workers,
                crate::serve::auth::heap_bytes(fixed.max_header_bytes),
            ),
        };
        // --etag hash: the process's table of hashed versions.
        let etag_hashes = match fixed.etag_hash {
            false => 0,
            true => times(
                fixed.file_cache_entries.max(1),
                crate::serve::hashes::BYTES_PER_ENTRY,
            ),
        };
        let acme_sites = live.all_sites().filter(|site| site.acme).count();
        let acme = match acme_sites {
            0 => 0,
            n => sum([times(n, crate::acme::SITE_BYTES), crate::acme::CLIENT_BYTES]),
        };
        MemoryBound {
            clients: sum([client_rates, auth]),
            acme,
            access_log,
            connections,
            tables_per_connection: tables,
            work_per_connection: work,
            file_cache,
            fixed: sum([scratch, etag_hashes]),
            tls_per_connection,
            tls_sessions,
            compress_cache,
            compressors,
        }
    }

    /// The most heap the connections, caches and scratch can hold
    /// (saturating, as [`MemoryBound::compute`]).
    pub fn total(&self) -> usize {
        let per_connection = sum([
            self.tables_per_connection,
            self.work_per_connection,
            self.tls_per_connection,
        ]);
        sum([
            times(self.connections, per_connection),
            self.file_cache,
            self.fixed,
            self.tls_sessions,
            self.access_log,
            self.compress_cache,
            self.compressors,
            self.clients,
            self.acme,
        ])
    }
}

/// A saturating sum of byte counts (see [`MemoryBound::compute`]).
fn sum<const N: usize>(terms: [usize; N]) -> usize {
    terms.into_iter().fold(0, usize::saturating_add)
}

/// A saturating product: `n` things of `each` bytes.
fn times(n: usize, each: usize) -> usize {
    n.saturating_mul(each)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults, term by term, as README states them.
    #[test]
    fn the_defaults_by_hand() {
        let config = Config::with(|c| c.live.site.cache_control = Some("public".into()));
        let b = MemoryBound::compute(&config, 1000);
        // A head: 1 KiB + a Location of --max-uri-bytes + Cache-Control.
        let head = 1024 + 8192 + 6;
        // A small file (16 KiB) with 16 parts of multipart framing.
        let largest_reply = head + 16_384 + 16 * 256 + 64;
        let output = 2 * (64 * 1024 + largest_reply);
        let work = std::mem::size_of::<Work>() + 2 * 16_384 + output;
        assert_eq!(b.work_per_connection, work);
        let per_client = crate::clients::Connections::bytes_per_connection();
        assert_eq!(
            b.tables_per_connection,
            std::mem::size_of::<Conn>() + 128 + per_client
        );
        assert_eq!(b.file_cache, 1024 * (16_384 + 4 * (8192 + 16) + 256));
        // The wheel: 2 levels x 256 slots x room for 4 keys.
        assert_eq!(b.fixed, 16_384 + 4 * 8192 + 64 * 1024 + 2 * 256 * 4 * 8);
        // 16 MiB of compressed files; one compressor: 1 MiB read, its
        // output (1 MiB + 1 KiB), a result made and two waiting, brotli's
        // state for a 2 MiB window (12 x 2 MiB + 2 MiB), 32 queued small
        // files.
        assert_eq!(b.compress_cache, 16 << 20);
        let mib = 1 << 20;
        let compressor = mib + (mib + 1024) + 3 * mib + (12 * 2 * mib + 2 * mib) + 32 * 16_384;
        assert_eq!(b.compressors, compressor);
        assert_eq!(
            b.total(),
            1000 * (b.tables_per_connection + work)
                + b.file_cache
                + b.fixed
                + b.compress_cache
                + b.compressors
        );
    }

    #[test]
    fn compression_adds_its_cache_and_a_compressor_per_worker() {
        let off = Config::with(|c| c.fixed.compress = false);
        let none = MemoryBound::compute(&off, 1000);
        assert_eq!((none.compress_cache, none.compressors), (0, 0));
        let zero = Config::with(|c| c.fixed.compress_cache_bytes = 0);
        assert_eq!(MemoryBound::compute(&zero, 1000).total(), none.total());
        let on = MemoryBound::compute(&Config::default(), 1000);
        let four = Config::with(|c| c.fixed.workers = 4);
        let four = MemoryBound::compute(&four, 1000);
        assert_eq!(
            four.compress_cache, on.compress_cache,
            "shared by the workers"
        );
        assert_eq!(four.compressors, 4 * on.compressors);
        let small = Config::with(|c| c.fixed.compress_max_bytes = 64 * 1024);
        assert!(MemoryBound::compute(&small, 1000).compressors < on.compressors / 4);
    }

    #[test]
    fn tls_adds_its_buffers_and_the_session_cache() {
        let plain = MemoryBound::compute(&Config::default(), 1000);
        assert_eq!((plain.tls_per_connection, plain.tls_sessions), (0, 0));
        let config = Config::with(|c| c.fixed.tls_listen = vec!["127.0.0.1:0".parse().unwrap()]);
        let tls = MemoryBound::compute(&config, 1000);
        let sending = 2 * (32 * 1024 + 1024);
        let buffers = 2 * ((64 * 1024 + 4096) + (32 * 1024 + 256)) + sending;
        assert_eq!(
            tls.tls_per_connection,
            std::mem::size_of::<crate::tls::Tls>() + 4096 + buffers
        );
        assert_eq!(tls.tls_sessions, 8192 * 1024);
        assert_eq!(
            tls.total() - plain.total(),
            1000 * tls.tls_per_connection + tls.tls_sessions
        );
    }

    #[test]
    fn added_headers_grow_every_head() {
        let plain = MemoryBound::compute(&Config::default(), 1000);
        let config = Config::with(|c| {
            c.live.site.headers = vec![
                "X-A: 1".into(),
                "Content-Security-Policy: default-src 'self'".into(),
            ]
        });
        let more = MemoryBound::compute(&config, 1000);
        // Each line and its CRLF, twice: the output buffer's bound holds
        // two replies.
        let added: usize = config.live.site.headers.iter().map(|h| h.len() + 2).sum();
        assert_eq!(added, 8 + 45);
        assert_eq!(
            more.work_per_connection - plain.work_per_connection,
            2 * added
        );
    }

    #[test]
    fn the_access_log_adds_its_queue_and_buffers() {
        let plain = MemoryBound::compute(&Config::default(), 1000);
        assert_eq!(plain.access_log, 0);
        let config =
            Config::with(|c| c.live.access_log = Some("/var/log/holdline/access.log".into()));
        let logged = MemoryBound::compute(&config, 1000);
        let line = 4 * (8192 + 2 * 16384) + 512;
        assert_eq!(
            logged.access_log,
            64 * ((64 << 10) + line) + (32 << 10) + line
        );
        assert_eq!(logged.total() - plain.total(), logged.access_log);
    }

    #[test]
    fn limits_no_machine_has_make_the_bound_unbounded() {
        // Each a value the parser takes (or a reload hands over): the
        // bound saturates, it neither wraps nor panics.
        let config = Config::with(|c| {
            c.live.max_uri_bytes = usize::MAX;
            c.fixed.file_cache_entries = usize::MAX;
            c.fixed.compress_cache_bytes = usize::MAX;
            c.fixed.compress_max_bytes = u64::MAX;
            c.fixed.small_file_bytes = u64::MAX;
            c.fixed.tls_session_cache = usize::MAX;
            c.fixed.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
            c.live.access_log = Some("-".into());
        });
        let b = MemoryBound::compute(&config, usize::MAX);
        assert_eq!(b.total(), usize::MAX);
        assert_eq!(b.file_cache, usize::MAX);
        let one_uri = Config::with(|c| c.live.max_uri_bytes = usize::MAX);
        assert_eq!(MemoryBound::compute(&one_uri, 1).total(), usize::MAX);
    }

    #[test]
    fn the_formula_follows_the_limits() {
        let config = Config::default();
        let b = MemoryBound::compute(&config, 1000);
        // Defaults: 16 KiB input, output up to 2 x (64 KiB + ~26 KiB).
        assert!(b.work_per_connection > 16 * 1024 + 2 * OUTPUT_CAP);
        assert!(b.work_per_connection < 256 * 1024, "{b:?}");
        let listing = Config::with(|c| c.live.site.listing = true);
        let with_listing = MemoryBound::compute(&listing, 1000);
        assert!(with_listing.work_per_connection > b.work_per_connection + MAX_GENERATED_BYTES);
        let bigger_heads = Config::with(|c| c.fixed.max_header_bytes = 64 * 1024);
        assert_eq!(
            MemoryBound::compute(&bigger_heads, 1000).work_per_connection,
            b.work_per_connection + 2 * 48 * 1024
        );
        assert_eq!(
            MemoryBound::compute(&config, 2000).total() - b.total(),
            1000 * (b.tables_per_connection + b.work_per_connection)
        );
    }
}
