//! Behind a real load balancer: HAProxy (Debian's, started here with a
//! config written here, health-checking `--health-path`) in front of three
//! holdline instances. Under keep-alive load through HAProxy, a rolling
//! restart (SIGTERM with `--drain-delay`, then a new process on the same
//! port) and a rolling binary upgrade (SIGUSR2) of all three lose no
//! request; and a revalidation is answered 304 by every instance.

mod common;

use common::*;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// HAProxy on `front`, balancing over `backends` with HTTP health checks
/// every 100 ms (one failure takes a server out, one success puts it
/// back), keep-alive to the servers, and retries on another server of a
/// request whose connection failed or came back empty (what a balancer
/// does for a GET; `retry-on` of HAProxy 2.x).
fn start_haproxy(dir: &TempDir, front: u16, backends: &[u16]) -> KillOnDrop {
    let mut config = format!(
        "global\n  maxconn 2000\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
         \x20 option http-keep-alive\n  retries 3\n  option redispatch\n\
         \x20 retry-on conn-failure empty-response\n\
         frontend fe\n  bind 127.0.0.1:{front}\n  default_backend be\n\
         backend be\n  balance roundrobin\n  option httpchk GET /healthz\n\
         \x20 http-check expect status 200\n  default-server inter 100ms fall 1 rise 1\n"
    );
    for (i, port) in backends.iter().enumerate() {
        config.push_str(&format!("  server s{i} 127.0.0.1:{port} check\n"));
    }
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let haproxy = peer_program("haproxy").expect("haproxy");
    let child = Command::new(haproxy)
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let front: SocketAddr = ([127, 0, 0, 1], front).into();
    assert!(wait_until(Duration::from_secs(10), || {
        TcpStream::connect(front).is_ok_and(|mut s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let r = exchange(&mut s, &get("/a.txt"));
            r.status == 200
        })
    }));
    KillOnDrop(child)
}

/// One holdline instance on `port`.
fn instance(site: &Site, port: u16) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "--listen",
        &listen,
        "--health-path",
        "/healthz",
        "--drain-delay",
        "0.5",
        "--keepalive-timeout",
        "30",
        "--max-requests",
        "0",
        "--status-path",
        "/status",
    ];
    Server::start(&site.root(), &args)
}

/// Keep-alive clients through HAProxy until `stop`: (answered, failed).
fn load(front: u16, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<(usize, usize)>> {
    (0..4)
        .map(|_| {
            let stop = Arc::clone(stop);
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, 0);
                let connect = || {
                    let s = TcpStream::connect(("127.0.0.1", front)).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    s
                };
                let mut s = connect();
                while !stop.load(Ordering::Relaxed) {
                    if s.write_all(get("/hello.txt").as_bytes()).is_err() {
                        failed += 1;
                        s = connect();
                        continue;
                    }
                    let mut buf = Vec::new();
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        read_response_after(&mut s, &mut buf, "GET")
                    })) {
                        Ok(r) if r.status == 200 && r.body == b"hello\n" => ok += 1,
                        _ => {
                            failed += 1;
                            s = connect();
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect()
}

/// The tests of this file one at a time: a rolling restart frees a
/// port and binds it again, and another test's `free_port` must not take
/// it in between.
static PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn rolling_restart_and_rolling_upgrade_behind_haproxy_lose_no_request() {
    let _ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    if peer_program("haproxy").is_none() {
        return;
    }
    let site = Site::new();
    let dir = TempDir::new("haproxy");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut servers: Vec<Server> = ports.iter().map(|&p| instance(&site, p)).collect();
    let front = free_port();
    let _haproxy = start_haproxy(&dir, front, &ports);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(front, &stop);
    // A fresh client through the balancer, between two steps.
    let through = || {
        let mut s = TcpStream::connect(("127.0.0.1", front)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(exchange(&mut s, &get("/a.txt")).status, 200);
    };
    through();

    // A rolling restart: each instance drains (the health check fails,
    // HAProxy takes it out), exits, and a new one takes its port.
    for (i, &port) in ports.iter().enumerate() {
        let old = &mut servers[i];
        old.signal(libc::SIGTERM);
        assert_eq!(old.wait_exit(Duration::from_secs(15)), Some(0));
        servers[i] = instance(&site, port);
        // Back in HAProxy's pool before the next one goes: two health
        // checks (or requests) beyond the status requests asked here.
        let mut asked = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            asked += 1;
            stub_status(&servers[i]).requests >= asked + 2
        }));
        through();
    }
    // A rolling binary upgrade: each instance hands over to its
    // successor.
    let mut successors = Vec::new();
    for server in servers.iter_mut() {
        server.signal(libc::SIGUSR2);
        assert_eq!(
            server.wait_exit(Duration::from_secs(20)),
            Some(0),
            "{}",
            server.log_text()
        );
        let log = server.log_text();
        let pid: u32 = log
            .lines()
            .rev()
            .filter_map(|l| l.split("upgrade: pid ").nth(1))
            .find_map(|rest| rest.split(' ').next()?.parse().ok())
            .expect("the successor's pid");
        successors.push(pid);
        through();
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for client in clients {
        let (o, f) = client.join().unwrap();
        ok += o;
        failed += f;
    }
    for pid in successors {
        // SAFETY: plain kill(2) of processes this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    eprintln!(
        "behind haproxy: {ok} requests answered, {failed} failed, through 3 restarts and 3 upgrades"
    );
    assert_eq!(failed, 0, "{ok} answered");
    assert!(ok > 100, "{ok}");
}

#[test]
fn every_instance_answers_a_revalidation_with_304() {
    let _ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let site = Site::new();
    // Three instances of one site (copies would do as well: the tag has
    // no inode in it).
    let servers: Vec<Server> = (0..3).map(|_| instance(&site, free_port())).collect();
    let first = exchange(&mut servers[0].connect(), &get("/hello.txt"));
    let etag = first.header("ETag").unwrap().to_string();
    for server in &servers {
        let r = exchange(
            &mut server.connect(),
            &get_with("/hello.txt", &format!("If-None-Match: {etag}\r\n")),
        );
        assert_eq!(r.status, 304, "{}", r.head);
    }
}
