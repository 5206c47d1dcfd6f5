//! The two ways a test runs holdline: the real binary as a child process
//! ([`Server`]), or the library's reactor on a thread of this process
//! ([`InProcess`]) for tests that watch it from inside (a counting global
//! allocator). Both listen on 127.0.0.1 with a port the kernel chose, and
//! both are stopped on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::wait_until;

/// Where a running server, in a child or in this process, is reached:
/// the status getters take either.
pub trait Listening {
    /// The plain-HTTP address (the first `--listen`).
    fn http_addr(&self) -> SocketAddr;

    /// A fresh connection, Nagle off so that a small request goes out at
    /// once.
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.http_addr()).expect("connect");
        s.set_nodelay(true).unwrap();
        s
    }
}

/// How many fds process `pid` holds (0 once it is gone).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A running server; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    /// Dropped with the server: tells its watchdog the test is over.
    _watchdog: std::sync::mpsc::Sender<()>,
}

/// How long one test may keep its server: past it the server is killed, so
/// a test blocked on it fails (EOF, reset) instead of hanging `cargo test`.
pub const SERVER_WATCHDOG: Duration = Duration::from_secs(120);

impl Server {
    /// Starts holdline serving `root` with extra `args`.
    pub fn start(root: &Path, args: &[&str]) -> Server {
        Server::try_start(root, args).expect("server should start")
    }

    pub fn try_start(root: &Path, args: &[&str]) -> Result<Server, String> {
        Server::try_start_env(root, args, &[])
    }

    /// [`Server::start`] with variables set in its environment (such as
    /// `HOLDLINE_FAULTS`, the debug build's fault injector).
    pub fn start_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::try_start_env(root, args, env).expect("server should start")
    }

    pub fn try_start_env(
        root: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdline"));
        cmd.args(["--listen", "127.0.0.1:0"]).args(args).arg(root);
        cmd.envs(env.iter().copied());
        Server::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Result<Server, String> {
        cmd.env(
            "RUST_LOG",
            std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_SHOW_LOG").is_some() {
                    eprintln!("server: {line}");
                }
                // Logged before anyone is told, so the log holds the line.
                sink.lock().unwrap().push(line.clone());
                if let Some(addr) = line
                    .split("listening on http://")
                    .nth(1)
                    .and_then(|rest| rest.split('/').next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Ok(addr));
                    }
                } else if line.contains("error")
                    && let Some(tx) = tx.as_ref()
                {
                    let _ = tx.send(Err(line));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(addr)) => {
                let (watchdog, over) = std::sync::mpsc::channel::<()>();
                let pid = child.id() as libc::pid_t;
                std::thread::spawn(move || {
                    if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        over.recv_timeout(SERVER_WATCHDOG)
                    {
                        let _ = writeln!(
                            std::io::stderr(),
                            "WATCHDOG: the test still held its server after {SERVER_WATCHDOG:?}; killing it"
                        );
                        // SAFETY: plain kill(2) of our own child.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                });
                Ok(Server {
                    child,
                    addr,
                    log,
                    _watchdog: watchdog,
                })
            }
            Ok(Err(line)) => {
                let _ = child.kill();
                Err(line)
            }
            Err(_) => {
                let _ = child.kill();
                Err("server did not say where it listens".into())
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let mut exited = None;
        wait_until(within, || {
            exited = self.child.try_wait().unwrap();
            exited.is_some()
        });
        exited.and_then(|status| status.code())
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// After upgrades (SIGUSR2), the pid serving now: the last one the
    /// log says serves. The successor is not this `Server`'s child: hold
    /// a [`Reap`] for it.
    pub fn successor_pid(&self) -> Option<u32> {
        let log = self.log_text();
        let pids: Vec<u32> = log
            .lines()
            .filter_map(|l| l.split("upgrade: pid ").nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse().ok())
            .collect();
        pids.last().copied()
    }
}

impl Server {
    /// Upgrades with SIGUSR2 and waits for this process to hand over and
    /// exit 0; the successor, which serves now, is killed when the
    /// returned value drops.
    pub fn upgrade(&mut self) -> Reap {
        self.signal(libc::SIGUSR2);
        assert_eq!(
            self.wait_exit(Duration::from_secs(20)),
            Some(0),
            "{}",
            self.log_text()
        );
        Reap(self.successor_pid().expect("a successor serves"))
    }
}

/// Whether `pid` runs (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Kills, when dropped, a process the test caused to start that is no
/// child of its `Server` (an upgrade's successor).
pub struct Reap(pub u32);

impl Drop for Reap {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of a pid this test caused to start.
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
    }
}

impl Listening for Server {
    fn http_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server run by the library in this process, on a thread of its own.
/// A global allocator that counts per thread sees what that thread holds.
///
/// Stopped on drop, the way the binary is: SIGTERM, sent to the server's
/// thread alone (tgkill). The reactor's signalfd blocks SIGTERM for the
/// thread that binds it and reads what is pending for that thread, so the
/// signal reaches the reactor and never the rest of the test process.
pub struct InProcess {
    /// Every TCP listener, as bound: the plain ones, then the TLS ones.
    pub addrs: Vec<SocketAddr>,
    /// The server thread's kernel id, for tgkill(2).
    tid: libc::pid_t,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

/// How long a stop waits for the reactor after each SIGTERM: the first
/// asks for a graceful shutdown (idle connections close at once), the
/// second (`--shutdown-timeout` is 10 s) exits at once.
const IN_PROCESS_STOP: Duration = Duration::from_secs(5);

impl InProcess {
    /// Binds `config` (with `--workers 1`) on a new thread, runs
    /// `on_thread` there, then the reactor. Panics if it does not start.
    pub fn start(
        config: holdline::config::Config,
        on_thread: impl FnOnce() + Send + 'static,
    ) -> InProcess {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            // Bound here, not by the caller: the signalfd must belong to
            // this thread for Drop's SIGTERM to reach it.
            let mut server = match holdline::reactor::Server::bind(config) {
                Ok(server) => server,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return Ok(());
                }
            };
            // SAFETY: gettid(2) has no preconditions.
            let tid = unsafe { libc::gettid() };
            let _ = tx.send(Ok((server.local_addrs(), tid)));
            on_thread();
            server.run()
        });
        let (addrs, tid) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server thread said nothing")
            .expect("server should start");
        InProcess {
            addrs,
            tid,
            thread: Some(thread),
        }
    }

    /// Asks the reactor to stop, at once after a grace; Ok once its
    /// thread has ended.
    fn stop(&self, thread: &JoinHandle<std::io::Result<()>>) -> Result<(), &'static str> {
        for _ in 0..2 {
            if thread.is_finished() {
                return Ok(());
            }
            // Unblocked (the reactor found no signalfd), SIGTERM would
            // end the whole test process.
            if !blocks_sigterm(self.tid) {
                return Err("the in-process server takes no signals: it cannot be stopped");
            }
            // SAFETY: tgkill(2) to a thread of this process that has not
            // returned (just checked), so its id is not reused yet; it
            // blocks SIGTERM and takes it from its signalfd.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), self.tid, libc::SIGTERM) };
            wait_until(IN_PROCESS_STOP, || thread.is_finished());
        }
        if thread.is_finished() {
            Ok(())
        } else {
            Err("the in-process server did not stop after two SIGTERMs")
        }
    }
}

/// Whether thread `tid` of this process blocks SIGTERM (its `SigBlk`).
fn blocks_sigterm(tid: libc::pid_t) -> bool {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status"));
    status.ok().is_some_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
    })
}

impl Listening for InProcess {
    fn http_addr(&self) -> SocketAddr {
        self.addrs[0]
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // A reactor that does not stop is left running (detached): it
        // fails its test instead of hanging `cargo test` in a destructor.
        let stopped = self.stop(&thread);
        if std::thread::panicking() {
            return;
        }
        if let Err(why) = stopped {
            panic!("{why}");
        }
        let run = thread.join().expect("the server thread panicked");
        run.expect("the reactor stopped with an error");
    }
}
