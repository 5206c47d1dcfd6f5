//! systemd: readiness notifications to a `NOTIFY_SOCKET` (a unix datagram
//! socket the test binds, standing in for systemd), and socket activation
//! through Debian's `systemd-socket-activate`, the real tool (`.ci/run`
//! installs it; the test skips loudly without it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The next datagram on `socket`, within 10 s.
fn next_state(socket: &UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn readiness_reload_and_stopping_are_notified() {
    let site = Site::new();
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdline"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .arg(site.root())
        .env("NOTIFY_SOCKET", &path);
    let mut server = Server::spawn(cmd).expect("server starts");
    // READY=1 once it serves (the "listening" line came first).
    assert_eq!(next_state(&socket), "READY=1");
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/hello.txt")).status, 200);
    server.signal(libc::SIGHUP);
    assert_eq!(next_state(&socket), "RELOADING=1");
    assert_eq!(next_state(&socket), "READY=1");
    drop(s);
    server.signal(libc::SIGTERM);
    assert_eq!(next_state(&socket), "STOPPING=1");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn socket_activation_serves_on_the_passed_socket() {
    let Some(activate) = peer_program("systemd-socket-activate") else {
        return;
    };
    let site = Site::new();
    // A free port: bound by the kernel, released, handed to the tool.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(activate);
    cmd.arg(format!("--listen=127.0.0.1:{port}"))
        .arg(env!("CARGO_BIN_EXE_holdline"))
        // Ignored under socket activation: the passed socket is used.
        .args(["--listen", "127.0.0.1:1"])
        .arg(site.root());
    // The tool starts holdline at the first connection: make it, as soon
    // as the tool listens.
    let first = std::thread::spawn(move || {
        let mut connected = None;
        wait_until(Duration::from_secs(10), || {
            connected = TcpStream::connect(addr).ok();
            connected.is_some()
        });
        let mut s = connected.expect("systemd-socket-activate listens");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        let _ = s.read_to_string(&mut all);
        all
    });
    let server = Server::spawn(cmd).expect("holdline starts on the first connection");
    let first = first.join().unwrap();
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.ends_with("\r\n\r\nhello\n"), "{first}");
    assert_eq!(server.addr, addr, "it listens where systemd bound");
    assert!(
        server
            .log_text()
            .contains("socket activation: 1 listener passed by systemd"),
        "{}",
        server.log_text()
    );
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/a.txt")).body_text(), "a\n");
    upgrade_keeps_the_passed_socket(server, s);
}

/// An upgrade of a socket-activated server: the successor takes the
/// socket systemd passed (its `LISTEN_PID` names the old process, so the
/// environment it inherits passes it nothing) and the connection open.
fn upgrade_keeps_the_passed_socket(mut server: Server, mut kept: TcpStream) {
    let _reap = server.upgrade();
    let log = server.log_text();
    assert!(log.contains("upgrade: 1 listener taken over"), "{log}");
    assert_eq!(
        log.matches("passed by systemd").count(),
        1,
        "the successor takes no socket from its environment: {log}"
    );
    assert_eq!(
        exchange(&mut kept, &get("/hello.txt")).body_text(),
        "hello\n"
    );
    let mut fresh = TcpStream::connect(server.addr).unwrap();
    assert_eq!(exchange(&mut fresh, &get("/a.txt")).body_text(), "a\n");
}

/// An upgrade under systemd (NotifyAccess=all): the new process says
/// `MAINPID=` (itself) with `READY=1`, so systemd follows the service to
/// it; the old one exits when it handed over.
#[test]
fn an_upgrade_tells_systemd_the_new_main_pid() {
    let site = Site::new();
    let dir = TempDir::new("notify-upgrade");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdline"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .arg(site.root())
        .env("NOTIFY_SOCKET", &path);
    let mut server = Server::spawn(cmd).expect("server starts");
    assert_eq!(next_state(&socket), "READY=1");
    server.signal(libc::SIGUSR2);
    let state = next_state(&socket);
    let pid: u32 = state
        .strip_prefix("MAINPID=")
        .and_then(|rest| rest.strip_suffix("\nREADY=1"))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{state:?}"));
    assert_ne!(pid, server.pid());
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    let mut s = TcpStream::connect(server.addr).unwrap();
    assert_eq!(exchange(&mut s, &get("/hello.txt")).status, 200);
    // SAFETY: plain kill(2) of the process this test's server started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert_eq!(next_state(&socket), "STOPPING=1");
}
