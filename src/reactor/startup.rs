//! Start-up: from a configuration to running reactors. The fd budget is
//! computed (and the soft RLIMIT_NOFILE raised), the listeners bound (or
//! taken from systemd), the certificates loaded, signals taken into a
//! signalfd, the access log's writer started, one reactor built per
//! worker, and root given up; then `READY=1`.
//!
//! Panics: `sockets[0]`, `servers[0]`, `alarms[1..]` and `alarms[worker]`
//! index lists of one entry per worker, and there is at least one.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};
use slab::Slab;

use super::StartError;
use super::admission::Admission;
use super::handover::HandoverSlot;
use super::lifecycle::Reconfig;
use super::listeners::{ListenSocket, Listener};
use super::sockets::{adopt_handed, adopt_passed, bind_all};
use super::{LISTENER_BASE, Ledger, SIGNAL, Server, TIMER_TICK, WAKE, plural};
use crate::accesslog::Sink;
use crate::budget::{self, Budget, Reserve};
use crate::config::Config;
use crate::conn::Pool;
use crate::contain;
use crate::evict::EvictionQueues;
use crate::files::Root;
use crate::memory::MemoryBound;
use crate::serve::Responder;
use crate::signals::SignalFd;
use crate::stats::Shutdown;
use crate::stats::{Gauges, Shared, Stats};
use crate::tls::TlsSetup;
use crate::wake::{Alarm, Wake};
use crate::wheel::TimerWheel;

/// What one worker's reactor is built from.
struct Parts {
    worker: usize,
    poll: Poll,
    sockets: Vec<Listener>,
    tls: Option<TlsSetup>,
    signals: Option<SignalFd>,
    budget: Budget,
    shared: Arc<Shared>,
    peers: Vec<Arc<Alarm>>,
    reconfig: Arc<Reconfig>,
    access_log: Arc<Sink>,
    /// This worker's own alarm (its compressor wakes it too).
    alarm: Arc<Alarm>,
    /// Where worker 0 leaves an upgrade's channel for the others.
    handover: HandoverSlot,
    /// The per-client tables, every worker's.
    clients: Arc<crate::clients::Tables>,
}

impl Server {
    /// A worker's reactor over already-bound listeners.
    fn new(config: Config, parts: Parts) -> Result<Server, StartError> {
        let Parts {
            worker,
            poll,
            sockets,
            tls,
            signals,
            budget,
            shared,
            peers,
            reconfig,
            access_log,
            alarm,
            handover,
            clients,
        } = parts;
        let fixed = &config.fixed;
        let default_root = &config.live.site.root;
        let root =
            Root::open(default_root, fixed.follow_symlinks).map_err(|source| StartError::Root {
                path: default_root.clone(),
                source,
            })?;
        let mut listeners = Vec::new();
        for (i, mut listener) in sockets.into_iter().enumerate() {
            poll.registry()
                .register(
                    listener.socket.source(),
                    Token(LISTENER_BASE + i),
                    Interest::READABLE,
                )
                .map_err(StartError::reactor(format!("register {}", listener.local)))?;
            listeners.push(listener);
        }
        if let Some(signals) = &signals {
            poll.registry()
                .register(
                    &mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(signals)),
                    SIGNAL,
                    Interest::READABLE,
                )
                .map_err(StartError::reactor("register the signalfd"))?;
        }
        let now = Instant::now();
        let max = budget.max_connections;
        let responder = Responder::new(
            &config,
            root,
            access_log,
            (now, SystemTime::now()),
            Some(Arc::clone(&alarm)),
            Arc::clone(&clients),
        )
        .map_err(|(path, source)| StartError::Root { path, source })?;
        Ok(Server {
            poll,
            listeners,
            signals,
            // Sized for the budget up front: the memory is only reserved,
            // and pages are touched as connections arrive, so RSS grows
            // per connection without the doubling copies of a growing Vec.
            conns: Slab::with_capacity(max),
            tls,
            wheel: TimerWheel::with_capacity(now, TIMER_TICK, max),
            responder,
            timeouts: config.live.timeouts(),
            pool: Pool::new(fixed.max_header_bytes, 1024),
            evict: EvictionQueues::with_capacity(max, config.live.evict_stalled_after),
            clients,
            redrive: Vec::new(),
            ledger: Ledger {
                stats: Stats::default(),
                gauges: Gauges::default(),
                budget,
                shared,
                worker,
            },
            config,
            expired: Vec::new(),
            admission: Admission::default(),
            next_sweep: now,
            drain_until: None,
            shutdown_deadline: None,
            alarm,
            peers,
            reconfig,
            config_generation: 0,
            upgrade: None,
            handover,
            listener_records: Vec::new(),
            acme: None,
        })
    }
}

/// Computes the fd budget, binds every listener (one socket per worker
/// with SO_REUSEPORT when `--workers` > 1, so the kernel spreads new
/// connections across them), takes the signals, and builds one reactor per
/// worker. Logs where it listens and what it serves.
pub fn start(mut config: Config) -> Result<Vec<Server>, StartError> {
    let started = config.clone();
    // At least one: the per-worker lists below are indexed at 0.
    let workers = config.fixed.workers.max(1);
    // A binary upgrade: the predecessor hands over its listeners (the
    // same sockets); ours are not bound.
    let (predecessor, handed) = match crate::upgrade::predecessor() {
        None => (None, Vec::new()),
        Some(channel) => {
            let fail = StartError::reactor("take the listeners of the process upgraded");
            let channel = channel.map_err(fail)?;
            let handed = crate::upgrade::receive_listeners(&channel).map_err(
                StartError::reactor("receive the listeners of the process upgraded"),
            )?;
            log::info!(
                "upgrade: {} listener{} taken over (--listen and --tls-listen are not bound)",
                handed.len(),
                plural(handed.len())
            );
            config.fixed.listen.clear();
            config.fixed.listen_unix.clear();
            config.fixed.tls_listen.clear();
            (Some(channel), handed)
        }
    };
    // Socket activation: systemd bound the listeners; ours are not used.
    let passed = crate::systemd::listen_fds();
    if !passed.is_empty() {
        log::info!(
            "socket activation: {} listener{} passed by systemd (--listen and --tls-listen are not bound)",
            passed.len(),
            plural(passed.len())
        );
        config.fixed.listen.clear();
        config.fixed.listen_unix.clear();
        config.fixed.tls_listen.clear();
    }
    let budget = setup_fd_budget(&config, passed.len() + handed.len())?;
    let passed_tls = passed.iter().any(|p| p.tls) || handed.iter().any(|h| h.tls);
    let tls = load_tls(&config, passed_tls)?;
    let mut sockets = bind_all(&config, workers)?;
    adopt_passed(passed, &mut sockets)?;
    adopt_handed(handed, &mut sockets)?;
    // Blocks SIGINT/SIGTERM in this thread; the worker threads spawned
    // from it inherit the mask, so only the signalfd ever sees them.
    let mut signals = match SignalFd::new() {
        Ok(signals) => Some(signals),
        Err(e) => {
            log::warn!("no signalfd ({e}): SIGTERM will not shut down gracefully");
            None
        }
    };
    // The addresses as bound (a port 0 became a real one): the responder
    // names the TLS port in --redirect-to-https's Location.
    config.fixed.tls_listen = sockets[0]
        .iter()
        .filter(|l| l.tls)
        .map(|l| l.local)
        .collect();
    let share = budget.share(workers);
    // Every worker's epoll and alarm first: worker 0 (which takes the
    // signals) gets the others' alarms when it is built; each worker's
    // own is also its compressor's.
    let polls = (0..workers)
        .map(|_| Poll::new().map_err(StartError::reactor("create epoll")))
        .collect::<Result<Vec<Poll>, StartError>>()?;
    let alarms = polls
        .iter()
        .map(|poll| {
            Alarm::new(poll.registry(), WAKE)
                .map(Arc::new)
                .map_err(StartError::reactor("create a waker"))
        })
        .collect::<Result<Vec<Arc<Alarm>>, StartError>>()?;
    let shared = Arc::new(Shared::new(workers));
    let reconfig = Arc::new(Reconfig::new(started, budget.max_connections));
    let handover: HandoverSlot = Arc::default();
    // Opened before privileges are dropped, as nginx's master opens its
    // logs; the writer thread starts here.
    let access_log = Sink::start(config.live.access_log.as_deref()).map_err(|source| {
        let path = config.live.access_log.clone().unwrap_or_default();
        StartError::AccessLog { path, source }
    })?;
    // One pair of per-client tables for every worker, sized for the
    // whole budget.
    let clients = Arc::new(crate::clients::Tables::new(
        budget.max_connections,
        config.live.max_client_connections,
        config.fixed.client_table_entries,
        config.live.client_rate,
        config.live.client_burst,
    ));
    let mut servers = Vec::with_capacity(workers);
    for (worker, (poll, worker_sockets)) in polls.into_iter().zip(sockets).enumerate() {
        let parts = Parts {
            worker,
            poll,
            sockets: worker_sockets,
            tls: tls.clone(),
            signals: if worker == 0 { signals.take() } else { None },
            budget: share,
            shared: Arc::clone(&shared),
            peers: if worker == 0 {
                alarms[1..].to_vec()
            } else {
                Vec::new()
            },
            reconfig: Arc::clone(&reconfig),
            access_log: Arc::clone(&access_log),
            alarm: Arc::clone(&alarms[worker]),
            handover: Arc::clone(&handover),
            clients: Arc::clone(&clients),
        };
        servers.push(Server::new(config.clone(), parts)?);
    }
    // What worker 0 hands a successor of its own (SIGUSR2): every
    // worker's listeners, by fd.
    let records = servers
        .iter()
        .flat_map(|server| {
            let worker = server.ledger.worker;
            server.listeners.iter().map(move |l| l.record(worker))
        })
        .collect();
    servers[0].listener_records = records;
    // Everything that may need root is done: listeners, ROOT, keys. The
    // "listening" line below then means: serving, as the final user.
    crate::privileges::drop_to(config.fixed.user.as_deref()).map_err(StartError::User)?;
    // As the final user, so that what it stores is that user's.
    if let Some(tls) = &tls {
        servers[0].acme = start_acme(&config, tls, &shared)?;
    }
    log_listening(&servers[0], &config, workers);
    match predecessor {
        None => crate::systemd::notify("READY=1"),
        Some(channel) => {
            // systemd (NotifyAccess=all) follows the service to this
            // process; the predecessor hands over once told.
            crate::systemd::notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
            crate::upgrade::say_ready(&channel)
                .map_err(StartError::reactor("tell the process upgraded"))?;
            servers[0].receive_handover(channel);
        }
    }
    Ok(servers)
}

/// The ACME manager, when a site has `--acme`: every such site gets its
/// stored certificate (or a placeholder) now, the rest on its thread.
fn start_acme(
    config: &Config,
    tls: &TlsSetup,
    shared: &Arc<Shared>,
) -> Result<Option<crate::acme::Manager>, StartError> {
    let sites = config.live.acme_sites();
    if !config.live.all_sites().any(|site| site.acme) {
        return Ok(None);
    }
    let options = config.fixed.acme.clone();
    if !options.agree_tos {
        let reason = "--acme needs --acme-agree-tos (the CA's terms of service)";
        return Err(StartError::Tls(crate::tls::CertError {
            path: PathBuf::new(),
            reason: reason.into(),
        }));
    }
    let kind = options
        .challenge
        .unwrap_or(match config.fixed.listen.is_empty() {
            true => crate::acme::ChallengeKind::TlsAlpn01,
            false => crate::acme::ChallengeKind::Http01,
        });
    log::info!(
        "acme: {} site{} from {} by {}, kept in {}",
        sites.len(),
        plural(sites.len()),
        options.directory,
        kind.as_str(),
        options.storage.display()
    );
    let resolver = tls.clone();
    let install: crate::acme::Install = Box::new(move |site, key| resolver.install_acme(site, key));
    crate::acme::Manager::start(options, kind, sites, install, Arc::clone(&shared.acme))
        .map(Some)
        .map_err(StartError::reactor("start the ACME thread"))
}

/// The fds helper threads may hold beside the reactors' (see
/// [`Reserve::helpers`]).
fn helper_fds(config: &Config) -> usize {
    let acme = match config.live.all_sites().any(|site| site.acme) {
        true => 2,
        false => 0,
    };
    let hashes = match config.fixed.etag_hash {
        true => crate::serve::hashes::MAX_QUEUED + 1,
        false => 0,
    };
    acme + hashes
}

/// The certificates, when a listener (bound or passed) is TLS.
fn load_tls(config: &Config, passed_tls: bool) -> Result<Option<TlsSetup>, StartError> {
    let fixed = &config.fixed;
    if passed_tls && fixed.tls_certs.is_empty() {
        return Err(StartError::Tls(crate::tls::CertError {
            path: PathBuf::new(),
            reason: "systemd passed a TLS socket, but no --tls-cert and --tls-key".into(),
        }));
    }
    if fixed.tls_listen.is_empty() && !passed_tls {
        return Ok(None);
    }
    let acme = config.live.all_sites().any(|site| site.acme);
    TlsSetup::load(
        &fixed.tls_certs,
        fixed.tls_session_cache,
        fixed.tls_tickets,
        acme,
    )
    .map(Some)
    .map_err(StartError::Tls)
}

/// The one line that says the server is up: where it listens, what it
/// serves, how.
fn log_listening(first: &Server, config: &Config, workers: usize) {
    let addrs: Vec<String> = first
        .listeners
        .iter()
        .map(|l| match (&l.socket, l.tls) {
            (ListenSocket::Unix(_, Some(path)), _) => format!("unix:{}", path.display()),
            (ListenSocket::Unix(_, None), _) => "unix:(passed by systemd)".to_string(),
            (_, true) => format!("https://{}/", l.local),
            (_, false) => format!("http://{}/", l.local),
        })
        .collect();
    log::info!(
        "holdline {} listening on {} serving {} with {} worker{} (keep-alive {:?}, max {} requests per connection)",
        env!("CARGO_PKG_VERSION"),
        addrs.join(" "),
        first.responder.root_path().display(),
        workers,
        plural(workers),
        config.live.keepalive_timeout,
        config.live.max_requests,
    );
}

/// Runs every worker: the first on this thread, the others on their own,
/// and waits for all of them. A worker that dies (a panic no connection
/// contained, or an error of its poll) takes the whole server down
/// gracefully and makes this an error, so that the process exits
/// non-zero and its supervisor (systemd's `Restart=on-failure`) starts it
/// again, rather than serving on with fewer workers.
pub fn run_workers(servers: Vec<Server>) -> io::Result<()> {
    let shared = match servers.first() {
        Some(first) => Arc::clone(&first.ledger.shared),
        None => return Ok(()),
    };
    let alarms: Vec<Arc<Alarm>> = servers.iter().map(|s| Arc::clone(&s.alarm)).collect();
    let stop_all = move |worker: usize, why: &dyn std::fmt::Display| {
        log::error!("worker {worker} died: {why}; shutting the server down");
        shared.request_shutdown(Shutdown::Graceful);
        for alarm in &alarms {
            alarm.wake(Wake::Shutdown);
        }
    };
    let run = move |mut server: Server| -> io::Result<()> {
        let worker = server.ledger.worker;
        match contain::guarded(|| server.run()) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                stop_all(worker, &e);
                Err(e)
            }
            Err(panic) => {
                stop_all(worker, &panic);
                Err(io::Error::other(format!("worker {worker} panicked")))
            }
        }
    };
    let mut servers = servers.into_iter();
    let Some(first) = servers.next() else {
        return Ok(());
    };
    let mut handles = Vec::new();
    for server in servers {
        let name = format!("holdline-w{}", server.ledger.worker);
        let run = run.clone();
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(server))?;
        handles.push(handle);
    }
    let mut result = run(first);
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = result.and(Err(e)),
            Err(_) => result = result.and(Err(io::Error::other("a worker panicked"))),
        }
    }
    result
}

/// Reads RLIMIT_NOFILE, raises the soft limit, computes the budget, and
/// logs the figures in one line.
fn setup_fd_budget(config: &Config, passed: usize) -> Result<Budget, StartError> {
    let (soft, hard) = budget::nofile_limit().map_err(|source| StartError::Rlimit {
        set_to: None,
        source,
    })?;
    let budget = Budget::compute(
        soft,
        hard,
        config.fixed.max_fds,
        config.fixed.max_connections,
        Reserve::new(
            config.fixed.listen.len()
                + config.fixed.tls_listen.len()
                + config.fixed.listen_unix.len()
                + passed,
            config.fixed.workers,
        )
        .with_helpers(helper_fds(config)),
    )
    .map_err(StartError::Budget)?;
    if budget.limit != soft {
        budget::set_soft_nofile(budget.limit, hard).map_err(|e| StartError::Rlimit {
            set_to: Some(budget.limit),
            source: e,
        })?;
    }
    log::info!(
        "fd limit {} -> {} (hard {}), reserve {}, file headroom {}, max connections {}",
        budget.limit_before,
        budget.limit,
        budget.hard_limit,
        budget.reserve,
        budget.file_headroom,
        budget.max_connections
    );
    let memory = MemoryBound::compute(config, budget.max_connections);
    const MIB: f64 = 1024.0 * 1024.0;
    let tls = if memory.tls_per_connection > 0 {
        format!(
            " (TLS: {:.0} KiB of it per connection, + sessions {:.0} MiB)",
            memory.tls_per_connection as f64 / 1024.0,
            memory.tls_sessions as f64 / MIB
        )
    } else {
        String::new()
    };
    log::info!(
        "heap bound {:.0} MiB: {} connections x {:.0} KiB working{tls} + file cache {:.0} MiB + scratch {:.1} MiB + compression {:.0} MiB{}{}",
        memory.total() as f64 / MIB,
        memory.connections,
        (memory.tables_per_connection + memory.work_per_connection + memory.tls_per_connection)
            as f64
            / 1024.0,
        memory.file_cache as f64 / MIB,
        memory.fixed as f64 / MIB,
        (memory.compress_cache + memory.compressors) as f64 / MIB,
        if memory.access_log > 0 {
            format!(" + access log {:.1} MiB", memory.access_log as f64 / MIB)
        } else {
            String::new()
        },
        if memory.acme > 0 {
            format!(" + acme {:.1} MiB", memory.acme as f64 / MIB)
        } else {
            String::new()
        },
    );
    Ok(budget)
}
