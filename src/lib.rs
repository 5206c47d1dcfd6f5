//! # holdline: a tour
//!
//! holdline serves static files over HTTP/1.1 from **one thread** running
//! **one epoll reactor** (one per worker with `--workers`, 9. below; the
//! access log's writer and the compressors have threads of their own, off
//! the request path). No async runtime: every piece of state is a plain
//! struct, every wait is explicit, and every deadline lives in one place.
//! Follow one request from `accept` to its last byte:
//!
//! ```text
//!            ┌─────────────────────── reactor (one thread) ─────────────────────────┐
//! listener ─▶│ accept ─▶ admission (budget, evict) ─▶ slab[Token] = Conn            │
//! signalfd ─▶│ events ─▶ Conn::drive: write ▸ close? ▸ answer ▸ read   (transport)   │
//!            │                          Session: phases, deadlines    (sans-IO)     │
//!            │                          Answerer ─▶ Responder: route, file, head     │
//!            │ tick   ─▶ TimerWheel::advance ─▶ expired ─▶ Conn::on_deadline        │
//!            └──────────────────────────────────────────────────────────────────────┘
//! phases:  Reading ─▶ Writing ─▶ Idle ─▶ Reading ...
//!                         └──▶ Closing (linger) ─▶ gone
//! ```
//!
//! 1. **The reactor** ([`reactor`]). At start, [`reactor::start`] computes
//!    the fd budget (7. below), binds the listeners and builds one reactor
//!    per worker (9.). A reactor owns the listeners, a [`slab::Slab`] of
//!    connections (a connection's slab key is its mio `Token` and its timer
//!    key), the [timer wheel](wheel), the [eviction queues](evict), a
//!    [buffer pool](pool), the [counters](stats) and the [`serve::Responder`].
//!    It sleeps in `epoll_wait` until a socket is ready or the wheel's next
//!    due tick, never longer, never busy. Readiness is edge-triggered:
//!    accept until WouldBlock, read and write until WouldBlock (or a short
//!    read or write), retry on EINTR. SIGTERM/SIGINT (stop), SIGHUP
//!    (reload) and SIGUSR1 (reopen the access log) arrive through a
//!    [signalfd](signals) as one more token. A new connection is admitted
//!    against the budget and read at once.
//!
//! 2. **The connection** ([`conn::Conn`]) moves bytes. On each readiness
//!    event [`conn::Conn::drive`] writes what is pending (buffered bytes,
//!    then a file range with sendfile), closes if the last answer said so
//!    and is out (a lingering close: write side shut, input drained), lets
//!    the session answer every complete request already buffered, and reads
//!    more only when the session wants input; then it returns
//!    [`conn::Next`]: stay open, or close with a reason. The phase is
//!    settled once, at the end of a drive (a request answered and sent in
//!    one drive takes an idle connection from Idle to Idle). It does all IO
//!    through one small interface, the [`transport::Transport`]: plain TCP
//!    ([`transport::Tcp`]) or TLS ([`tls::Tls`]: rustls records over the
//!    same socket, file bodies read in 16 KiB chunks and encrypted), as a
//!    [`stream::Stream`], without touching the session, admission or
//!    the wheel. A TLS handshake runs under the header deadline and counts
//!    as "fresh" for eviction; [`tls::TlsSetup`] holds the certificates
//!    (chosen by SNI, reloaded on SIGHUP) and the resumption state.
//!
//! 3. **The session** ([`http::session::Session`]) is the connection's
//!    HTTP state machine, sans-IO: the phase
//!    ([`Reading`](http::session::Phase::Reading) a head or discarding a
//!    body, [`Writing`](http::session::Phase::Writing) a response,
//!    [`Idle`](http::session::Phase::Idle) between requests,
//!    [`Closing`](http::session::Phase::Closing)), its one deadline, the
//!    requests answered, and the close decision with its
//!    [`CloseReason`](close::CloseReason). It takes bytes and an `Instant`
//!    and never sees a socket: its tests run on made-up time, and the
//!    pipeline fuzz target ([`fuzzing`]) drives it directly.
//!
//! 4. **The HTTP core** ([`http`]) is plain functions over bytes, called
//!    by the session ([parse a head](http::parse_head), frame a
//!    [body](http::body)) and by the responder (the rest): decide
//!    [persistence](http::persist::decide) (RFC 9112 §9.3: version,
//!    `Connection` tokens, requests left, shutdown; it also names the close
//!    reason, once), turn a [target](http::target) into a safe relative
//!    path, and [encode a response head](http::response::encode_head).
//!
//! 5. **Responding** ([`serve`]): the session calls its
//!    [`Respond`](http::session::Respond) seam, a
//!    [`Responder`](serve::Responder) (settings, ROOT, caches) paired with
//!    a [`ServerView`](serve::ServerView) of the reactor's counters lent
//!    for the call. It routes the request to a file beneath ROOT ([`files`]:
//!    `openat2(RESOLVE_BENEATH)`, so neither `..` nor a symlink leaves
//!    ROOT) and writes the head, plus the body when it is small, into the
//!    connection's output buffer; larger bodies leave with `sendfile(2)`.
//!    Text is compressed on the fly ([`serve::compress`]): once per file
//!    version and coding (br, gzip), never on the reactor thread but by a
//!    [compressor](serve::compressor) thread whose results come back
//!    through the worker's `mio::Waker`; meanwhile the file goes out as
//!    it is, and afterwards every client that accepts the coding gets it
//!    from a cache bounded in bytes.
//!
//! 6. **Deadlines** ([`wheel`]): after each drive the reactor files the
//!    connection's one deadline (header timeout while Reading, send
//!    timeout while Writing, keep-alive timeout while Idle, linger timeout
//!    while Closing) and its eviction class. A two-level hashed wheel makes
//!    schedule, reset and cancel O(1); pushing a deadline later (what
//!    nearly every keep-alive connection does) costs one store.
//!
//! 7. **The resource budget** ([`budget`], [`evict`], [`memory`]): at
//!    start the soft `RLIMIT_NOFILE` is raised and a reserve subtracted;
//!    admission keeps `connections + file fds + headroom` under the
//!    budget. A file being sent costs one fd however many connections send
//!    it: its fd is shared ([`files::OpenFile`]) and cached, and an unused
//!    cached fd is the first thing given back when the budget needs one.
//!    At the budget the reactor evicts the least valuable connection: idle
//!    past a 1 s grace, lingering, never-spoke, slowloris, then a response
//!    stalled past `--evict-stalled-after` (the client is not reading);
//!    a response making progress never. If nothing may go, newcomers wait
//!    `--admission-wait` in the backlog and are then answered once without
//!    a slot and closed; EMFILE pauses accept instead of spinning. Memory
//!    is bounded per connection, so the heap has a bound that is a formula
//!    of the limits ([`memory::MemoryBound`], logged at start): no body
//!    past `--small-file-bytes` is built in a connection's buffers (multipart ranges are
//!    streamed part by part with sendfile, listings are capped). [`status`]
//!    serves the counters (nginx stub_status text, or Prometheus).
//!
//! 8. **The hot path**: an idle connection is a 96-byte [`conn::Conn`]; its
//!    buffers ([`http::session::Exchange`]) come from the [`pool`] while it works. Small
//!    files are served from a cache revalidated like nginx's
//!    `open_file_cache`, so a keep-alive request costs one `recv` and one
//!    `send` and no heap allocation (`tests/alloc.rs` counts them).
//!
//! 9. **Workers**: `--workers N` runs N such reactors on N threads, each
//!    with its own SO_REUSEPORT listeners, slab, wheel and share of the fd
//!    budget; they share only atomic counters and the shutdown state
//!    ([`stats::Shared`]), a reloaded configuration, the TLS setup and the
//!    access log's writer. [`reactor::start`] builds them, [`reactor::run_workers`]
//!    runs them.
//!
//! Configuration ([`config`]) has one table of options, [`config::OPTIONS`]:
//! the command line and the `--config` TOML file are parsed through it,
//! `--help` is printed from it, README's table is checked against it, and
//! it says which options a SIGHUP reload may change. On SIGHUP worker 0
//! reads the file again, merges it with [`config::Config::live_update`]
//! (restart-only options keep their running values), and hands the result
//! to every worker, which applies it to its timeouts and its responder;
//! connections stay open. The [`accesslog`] formats a line per request
//! into a per-worker buffer and hands it, once per loop turn, to a writer
//! thread, so the reactor never waits for a disk. Operations: [`systemd`]
//! (readiness notifications, socket activation) and [`privileges`]
//! (`--user`, giving up root once bound).

pub mod accesslog;
pub mod budget;
pub mod close;
pub mod config;
pub mod conn;
pub mod contain;
pub mod episode;
pub mod evict;
pub mod fault;
pub mod files;
pub mod fuzzing;
pub mod http;
pub mod memory;
pub mod pool;
pub mod privileges;
pub mod reactor;
pub mod serve;
pub mod signals;
pub mod stats;
pub mod status;
pub mod stream;
pub mod systemd;
pub mod tls;
pub mod transport;
pub mod wake;
pub mod wheel;
