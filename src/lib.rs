//! # holdline: a tour
//!
//! holdline serves static files over HTTP/1.1 from **one thread** running
//! **one epoll reactor** (one per worker with `--workers`; the access
//! log's writer and the compressors have threads of their own, off the
//! request path). No async runtime: every piece of state is a plain value,
//! every wait is explicit, and every deadline lives in one place. The tour
//! follows the code in the order it runs: start-up, then one request from
//! `accept` to its last byte, then what happens around it.
//!
//! ```text
//!            ┌─────────────────────── reactor (one thread) ─────────────────────────┐
//! listener ─▶│ accept ─▶ admission (budget, evict) ─▶ slab[Token] = Conn            │
//! signalfd ─▶│ events ─▶ Conn::drive: write ▸ close? ▸ answer ▸ read   (transport)   │
//! alarm    ─▶│                  Session: Fresh│Idle│Busy(Exchange)│Closing (sans-IO) │
//!            │                  (Responder, ServerView): route ▸ lookup ▸ head      │
//!            │ tick   ─▶ TimerWheel::advance ─▶ expired ─▶ Conn::on_deadline        │
//!            └──────────────────────────────────────────────────────────────────────┘
//! phases:  Reading ─▶ Writing ─▶ Idle ─▶ Reading ...
//!                         └──▶ Closing (linger) ─▶ gone
//! ```
//!
//! 0. **Start-up.** [`config`] parses the command line and the `--config`
//!    file through one table, [`config::OPTIONS`], into a
//!    [`config::Config`]: a [`config::Fixed`] half (listeners, workers,
//!    budgets, sizes: a restart changes them) and a [`config::Live`] half
//!    (timeouts, limits, and the sites, each a [`config::SiteOptions`]:
//!    its hosts, its ROOT, what its responses carry; a SIGHUP swaps it
//!    whole).
//!    [`reactor::start`] computes the fd budget (7.), loads the
//!    certificates, binds the listeners (or takes systemd's, [`systemd`],
//!    or a predecessor's at an upgrade), takes the
//!    signals into a [signalfd](signals), starts the access log's writer,
//!    builds one reactor per worker, gives up root ([`privileges`]), and
//!    [`reactor::run_workers`] runs them. (`holdline check` stops before
//!    the reactors: [`check`] opens every ROOT and certificate and prints
//!    what would be served; SIGHUP runs its checks before a swap.)
//!
//! 1. **The reactor** ([`reactor`]: the loop; admission, lifecycle, the
//!    upgrade hand-over, start-up and listeners in files of their own). A reactor owns the
//!    listeners, a [`slab::Slab`] of connections (a connection's slab key
//!    is its mio `Token` and its timer key), the [timer wheel](wheel), the
//!    [eviction queues](evict), a [`pool`] of exchanges, the
//!    [counters](stats) and the [`serve::Responder`]. It sleeps in
//!    `epoll_wait` until a socket is ready or the wheel's next due tick,
//!    never longer, never busy. Readiness is edge-triggered: accept until
//!    WouldBlock, read and write until WouldBlock (or a short read or
//!    write), retry on EINTR. Signals arrive as one more token; another
//!    thread wakes a reactor through its [alarm](wake), which says why
//!    (reload, shutdown, compressed results, an upgrade's hand-over). A
//!    new connection is admitted against the budget (7.) and read at once.
//!
//! 2. **The connection** ([`conn::Conn`]) moves bytes. On each readiness
//!    event [`conn::Conn::drive`] writes what is pending (buffered answers,
//!    then a file range with sendfile), closes if the last answer said so
//!    and is out (a lingering close: write side shut, input drained), lets
//!    the session answer every complete request already buffered, and reads
//!    more only when the session has room and wants input; then it returns
//!    [`conn::Next`]: stay open, or close with a reason. It does all IO
//!    through one small interface, the [`transport::Transport`]: plain TCP
//!    ([`transport::Tcp`]), a unix socket ([`transport::Unix`]) or TLS
//!    ([`tls::Tls`]: rustls records over the
//!    same socket, file bodies read in 16 KiB chunks and encrypted), as a
//!    [`stream::Stream`]. A TLS handshake runs inside the transport's
//!    reads: the session stays Fresh (3.), under the header deadline and
//!    "fresh" for eviction, until plaintext arrives; [`tls::TlsSetup`]
//!    holds the certificates (chosen by SNI, reloaded on SIGHUP) and
//!    resumption. Sites with `--acme` get theirs from [`acme`]: a thread
//!    of its own talks to the CA and hands each new certificate to the
//!    same resolver; the reactor only answers the challenges.
//!
//! 3. **The session** ([`http::session::Session`]) is the connection's
//!    HTTP state, one value, sans-IO: Fresh (accepted, nothing read), Idle
//!    (between requests) and Closing hold an `Instant` and no buffer; Busy
//!    holds an [`Exchange`](http::session::Exchange) lent by the pool, whose
//!    reading side (a head, a body being discarded, a chunked body with its
//!    held head and the limits it was parsed under) and writing side
//!    (unsent answers, a file body) are typed apart. The
//!    [`Phase`](http::session::Phase) the counters and deadlines use is
//!    derived from it; a close carries one [`CloseReason`](close::CloseReason).
//!    It takes bytes and an `Instant` and never sees a socket: its tests
//!    run on made-up time, and the pipeline fuzz targets ([`fuzzing`])
//!    drive it directly, reloads included.
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
//!    [`Respond`](http::session::Respond) seam, implemented by the
//!    [`Responder`](serve::Responder) paired with a
//!    [`ServerView`](serve::ServerView) of the reactor's counters lent for
//!    the call. Its host picks a site ([`serve::sites`]: `[[site]]`
//!    blocks, `--unknown-host`, 421 when the TLS server name, read by
//!    `tls/hello.rs`, picked another), the site's `--rule`s match its
//!    decoded path ([`serve::rules`]: header edits, address ranges, HTTP
//!    Basic auth whose bcrypt runs on a verifier thread while the request
//!    waits unanswered in its input ([`serve::auth`]), a redirect, a
//!    rewrite or a deny); it is routed to a
//!    [`Route`](serve::route::Route) whose variant carries its data; a
//!    file is looked up beneath the site's ROOT ([`serve::lookup`] and
//!    [`files`]: `openat2(RESOLVE_BENEATH)`, so neither `..` nor a
//!    symlink leaves ROOT) through the file cache, and
//!    its head, plus the body when it is small, is written into the
//!    exchange's output; larger plain-file bodies leave with
//!    `sendfile(2)` (over TLS they are read and encrypted; compressed
//!    ones are written from memory). Text is
//!    compressed once per file version and coding off the reactor
//!    ([`serve::compress`], [`serve::compressor`]). What a configuration
//!    says responses carry is one value ([`serve::settings`]), swapped
//!    whole by a reload. [`status`] renders the counters (nginx's
//!    stub_status, Prometheus, JSON, a live page); [`accesslog`] formats a
//!    line per request into a per-worker buffer that a writer thread
//!    writes, so the reactor never waits for a disk.
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
//!    past `--small-file-bytes` is built in a connection's buffers
//!    (multipart ranges are streamed part by part, listings are capped).
//!    Per client ([`clients`]): connections counted at accept and close
//!    (`--max-client-connections`), a request rate per token bucket
//!    (`--client-rate`: 429), in tables bounded by the budget and by
//!    `--client-table-entries`. Behind a trusted proxy the client is the
//!    one its `X-Forwarded-For` names, or its PROXY protocol header
//!    ([`proxy_header`], read by the connection before any TLS or HTTP).
//!
//! 8. **The hot path**: an idle connection is a 96-byte [`conn::Conn`];
//!    its exchange comes from the [`pool`] while it works. Small files are
//!    served from a cache revalidated like nginx's `open_file_cache`, so a
//!    keep-alive request costs one `recv` and one `send` and no heap
//!    allocation (`tests/alloc.rs` counts them).
//!
//! 9. **Workers**: `--workers N` runs N such reactors on N threads, each
//!    with its own SO_REUSEPORT listeners, slab, wheel and share of the fd
//!    budget; they share only atomic counters and the shutdown state
//!    ([`stats::Shared`]), the live configuration a reload publishes, the
//!    TLS setup, the access log's writer, each other's [alarms](wake) (to
//!    pass a reload on) and, during an upgrade, the hand-over channel
//!    ([`upgrade`]) idle connections leave by.
//!
//! 10. **Around the requests** (`reactor/lifecycle.rs`): on SIGHUP worker 0
//!     reads the file again, [`config::Config::live_update`] keeps the
//!     running `Fixed` half and takes the file's `Live` one, and every
//!     worker applies it to its timeouts and its responder; connections
//!     stay open, deadlines take the new timeouts as they are filed, and
//!     a request already parsed keeps the limits it was parsed under (a
//!     head still arriving is judged by the new `--max-uri-bytes`, the one
//!     head limit a reload changes; `--max-header-bytes` sizes buffers and
//!     needs a restart); the reloading worker opens the new sites' ROOTs
//!     first, and one it cannot open keeps the running configuration.
//!     Each ROOT's path is looked at again then and once per
//!     `--file-cache-valid`, to follow a deploy that flips it
//!     ([`files::Root::follow`]). SIGTERM drains gracefully.
//!
//! 11. **When something fails**: a panic while a connection moves is
//!     contained to it ([`contain`]: it closes as `internal_error`); a
//!     failing disk is answered with a precise status and logged once per
//!     episode ([`episode`]); debug builds can inject both ([`fault`]).

pub mod accesslog;
pub mod acme;
pub mod budget;
pub mod check;
pub mod clients;
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
pub mod proxy_header;
pub mod reactor;
pub mod serve;
pub mod signals;
pub mod stats;
pub mod status;
pub mod stream;
pub mod systemd;
pub mod tls;
pub mod transport;
pub mod upgrade;
pub mod wake;
pub mod wheel;
