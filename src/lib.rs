//! # holdline: a tour
//!
//! holdline serves static files over HTTP/1.1 from **one thread** running
//! **one epoll reactor**. No async runtime: every piece of state is a plain
//! struct, every wait is explicit, and every deadline lives in one place.
//! Follow one request from `accept` to its last byte:
//!
//! ```text
//!            ┌──────────────────── reactor (one thread) ─────────────────────┐
//! listener ─▶│ accept ─▶ admission ─▶ slab[Token] = Conn                      │
//! signalfd ─▶│ events ─▶ Conn::drive  (read ▸ parse ▸ respond ▸ write)        │
//!            │ tick   ─▶ TimerWheel::advance ─▶ expired ─▶ Conn::on_deadline  │
//!            └───────────────────────────────────────────────────────────────┘
//! Conn phases:  Reading ─▶ Writing ─▶ Idle ─▶ Reading ...
//!                              └──▶ Closing (linger) ─▶ gone
//! ```
//!
//! 1. **The reactor** ([`reactor`]) owns the listeners, a [`slab::Slab`] of
//!    connections (a connection's slab key is its mio `Token` and its timer
//!    key), the [timer wheel](wheel), a [buffer pool](pool) and the
//!    [counters](stats). It sleeps in `epoll_wait` until a socket is ready
//!    or the wheel's next due tick, never longer, never busy. Readiness is
//!    edge-triggered: accept until WouldBlock, read and write until
//!    WouldBlock (or a short read), retry on EINTR. SIGTERM/SIGINT arrive
//!    through a [signalfd](signals) as one more token.
//!
//! 2. **The connection** ([`conn`]) is an explicit state machine:
//!    [`Reading`](conn::Phase::Reading) a head (or discarding a body),
//!    [`Writing`](conn::Phase::Writing) a response,
//!    [`Idle`](conn::Phase::Idle) between requests (keep-alive: no buffers
//!    held), [`Closing`](conn::Phase::Closing) (write side shut, draining:
//!    the lingering close). Each phase has exactly one deadline, and each
//!    close carries a [`CloseReason`](stats::CloseReason) that is logged
//!    and counted.
//!
//! 3. **The sans-IO core** ([`http`]) is where HTTP lives, as plain
//!    functions over bytes: [parse a head](http::parse_head), frame a
//!    [body](http::body), decide [persistence](http::persist::decide) (RFC
//!    9112 §9.3: version, `Connection` tokens, requests left, shutdown),
//!    turn a [target](http::target) into a safe relative path, and
//!    [encode a response head](http::response::encode_head). None of it
//!    touches a socket; all of it is unit-tested on byte strings.
//!
//! 4. **Serving** ([`serve`]) routes a parsed request to a file beneath
//!    ROOT ([`files`]: `openat2(RESOLVE_BENEATH)`, so neither `..` nor a
//!    symlink leaves ROOT) and writes the head, plus the body when it is
//!    small, into the connection's output buffer. Larger bodies go out with
//!    `sendfile(2)`.
//!
//! 5. **Deadlines** ([`wheel`]): header timeout while Reading, send timeout
//!    while Writing, keep-alive timeout while Idle, linger timeout while
//!    Closing. A two-level hashed wheel makes schedule, reset and cancel
//!    O(1); pushing a deadline later (what nearly every keep-alive
//!    connection does) costs one store.
//!
//! 6. **The resource budget** ([`budget`], [`evict`], [`memory`]): at
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
//!    past `--small-file-bytes` is built in memory (multipart ranges are
//!    streamed part by part with sendfile, listings are capped). [`status`]
//!    serves the counters (nginx stub_status text, or Prometheus).
//!
//! 7. **The hot path**: an idle connection is a 120-byte [`conn::Conn`]; its
//!    buffers ([`conn::Work`]) come from the [`pool`] while it works. Small
//!    files are served from a cache revalidated like nginx's
//!    `open_file_cache`, so a keep-alive request costs one `recv` and one
//!    `send` and no heap allocation (`tests/alloc.rs` counts them).
//!
//! 8. **Workers**: `--workers N` runs N such reactors on N threads, each
//!    with its own SO_REUSEPORT listeners, slab, wheel and share of the fd
//!    budget; they share only atomic counters ([`stats::Shared`]) and the
//!    shutdown state. [`reactor::start`] builds them, [`reactor::run_workers`]
//!    runs them.
//!
//! Configuration ([`config`]) has one table of options from which `--help`
//! is printed and README's table is checked.

pub mod budget;
pub mod config;
pub mod conn;
pub mod evict;
pub mod files;
pub mod http;
pub mod memory;
pub mod pool;
pub mod reactor;
pub mod serve;
pub mod signals;
pub mod stats;
pub mod status;
pub mod wheel;
