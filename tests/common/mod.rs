//! The integration tests' one harness: start holdline on 127.0.0.1 with a
//! port chosen by the kernel, as a child process or in this process
//! (`server`); talk to it with raw sockets (`http`); read its counters
//! from the status page (`status`); make certificates (`pki`); serve
//! temp directories that are
//! removed afterwards; and wait on conditions with deadlines, never fixed
//! sleeps.
//!
//! Every test binary compiles this module and uses part of it: what one
//! leaves unused is not a warning.
#![allow(dead_code, unused_imports)]

mod http;
mod pki;
mod server;
mod status;

pub use http::*;
pub use pki::*;
pub use server::*;
pub use status::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The wheel's tick, as the server promises it (reactor::TIMER_TICK).
pub const TICK: Duration = Duration::from_millis(100);
/// Slack a timing assertion allows beyond one tick.
pub const SLACK: Duration = Duration::from_millis(500);

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("holdline-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// Writes `rel` again, until its mtime differs from before: file times
    /// come from a clock that ticks every few milliseconds, and a server
    /// may tell versions apart by mtime (ETag, Last-Modified, caches).
    pub fn rewrite(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let mtime = || std::fs::metadata(self.0.join(rel)).and_then(|m| m.modified());
        let before = mtime().expect("rewrite an existing file");
        assert!(
            wait_until(Duration::from_secs(2), || {
                self.write(rel, &contents);
                mtime().unwrap() != before
            }),
            "the mtime of {rel} never changed"
        );
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The site most tests serve: `www/` inside a temp dir, with a secret
/// file beside (outside) it.
pub struct Site {
    pub dir: TempDir,
}

impl Site {
    pub fn new() -> Site {
        let dir = TempDir::new("site");
        dir.write("secret.txt", "TOP SECRET\n");
        dir.write("www/index.html", "<h1>home</h1>\n");
        dir.write("www/hello.txt", "hello\n");
        dir.write("www/a.txt", "a\n");
        dir.write("www/b.txt", "bb\n");
        dir.write("www/c.txt", "ccc\n");
        dir.write("www/sub/index.html", "sub\n");
        dir.write("www/empty/.keep", "");
        Site { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("www")
    }
}

/// Polls `cond` until it holds or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        // The poll interval: fine enough for a tick of 100 ms.
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Says loudly that a test did not run, and why: on stderr directly (not
/// with `eprintln!`, which the harness captures), so `cargo test` shows it
/// without `--nocapture`. With `HOLDLINE_REQUIRE_PEERS=1` (set by `.ci/run`)
/// it fails the test instead: CI never counts a skipped test as passed.
pub fn skip(reason: &str) {
    let message = format!("SKIPPED: {reason}. This test did not run.");
    assert!(
        std::env::var_os("HOLDLINE_REQUIRE_PEERS").is_none(),
        "{message} (HOLDLINE_REQUIRE_PEERS is set)"
    );
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// A peer program (curl, chromium...) or `None`, with a loud notice.
///
/// See [`skip`].
pub fn peer_program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skip(&format!("`{name}` is not installed; .ci/run installs it"));
    }
    found
}

/// A child's output, killing it if it runs longer than `within`: a peer
/// program that hangs fails its test instead of stalling `cargo test`.
pub fn output_within(child: std::process::Child, within: Duration) -> std::process::Output {
    let pid = child.id();
    let (done, over) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if over.recv_timeout(within).is_err() {
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let output = child.wait_with_output().unwrap();
    drop(done);
    output
}

/// A port free now (bound by the kernel on 127.0.0.1, released), for a
/// peer program whose configuration must name its port before it starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A peer program (HAProxy, pebble) killed and reaped when the test is
/// done, however it ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
