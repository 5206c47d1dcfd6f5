//! The command line: --help, --version, mistakes, and README's table.

mod common;

use common::*;
use holdline::config::{Config, OPTIONS};
use std::process::Command;

fn holdline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_holdline"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_every_option_with_its_default() {
    let out = holdline(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in OPTIONS {
        assert!(help.contains(opt.flag), "--help lacks {}", opt.flag);
    }
    // Each option's line says what SIGHUP does with it, as the table's
    // types say (README's column is checked against the same table).
    for opt in OPTIONS.iter().filter(|o| !o.command_line_only()) {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", opt.flag)))
            .unwrap_or_else(|| panic!("no --help line for {}", opt.flag));
        let says = if opt.live() {
            "[SIGHUP: applied]"
        } else {
            "[SIGHUP: restart]"
        };
        assert!(line.ends_with(says), "{line}");
    }
    assert!(help.contains("--keepalive-timeout SECS"));
    assert!(help.contains("[default: 5]"));
}

#[test]
fn version_prints_the_version() {
    let out = holdline(&["--version"]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let rustls = lock
        .split("name = \"rustls\"\nversion = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    // holdline 0.1.0 (COMMIT, rustls X, aws-lc Y)
    let start = format!("holdline {} (", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&start), "{line}");
    assert!(
        line.contains(&format!(", rustls {rustls}, aws-lc ")),
        "{line}"
    );
    assert!(line.ends_with(")\n") && line.lines().count() == 1, "{line}");
}

/// `--help` lists the options under their topics, in the table's order.
#[test]
fn help_groups_the_options_by_topic() {
    let help = String::from_utf8(holdline(&["--help"]).stdout).unwrap();
    let mut at = 0;
    for topic in holdline::config::Topic::ALL {
        let heading = format!("\n{}:\n", topic.heading());
        let found = help[at..].find(&heading).map(|i| at + i);
        let found = found.unwrap_or_else(|| panic!("{heading:?} missing or out of order"));
        at = found + heading.len();
        for spec in OPTIONS.iter().filter(|o| o.topic == topic) {
            let next_heading = help[at..].find(":\n\n").map_or(help.len(), |i| at + i);
            assert!(
                help[at..next_heading.max(at)].contains(&format!("  {}", spec.flag))
                    || help[at..].contains(&format!("  {}", spec.flag)),
                "{} not under {}",
                spec.flag,
                topic.heading()
            );
        }
    }
}

/// The man pages in contrib/man are what `holdline man` prints, list
/// exactly the table's options (holdline(1)) and keys (holdline.toml(5)),
/// and render without a warning (groff -ww).
#[test]
fn the_man_pages_are_generated_complete_and_render_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/man");
    for (args, file, command_line) in [
        (&["man"][..], "holdline.1", true),
        (&["man", "toml"][..], "holdline.toml.5", false),
    ] {
        let page = String::from_utf8(holdline(args).stdout).unwrap();
        let committed = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        assert!(
            page == committed,
            "contrib/man/{file} is stale: regenerate it with `holdline {}`",
            args.join(" ")
        );
        // Every entry of its options' section is an option of the table,
        // once.
        let section = if command_line {
            ".SH OPTIONS\n"
        } else {
            ".SH KEYS\n"
        };
        let body = page.split(section).nth(1).unwrap();
        let body = body.split("\n.SH ").next().unwrap();
        let listed: Vec<String> = body
            .lines()
            .filter_map(|l| l.strip_prefix(".B "))
            .map(|l| l.split([' ', '=']).next().unwrap().replace("\\-", "-"))
            .collect();
        let expected: Vec<String> = OPTIONS
            .iter()
            .filter(|o| command_line || !o.command_line_only())
            .map(|o| {
                if command_line {
                    o.flag.to_string()
                } else {
                    o.key().to_string()
                }
            })
            .collect();
        let mut a = listed.clone();
        let mut b = expected.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{file} lists other options than the table");
        let Some(groff) = peer_program("groff") else {
            continue;
        };
        let out = Command::new(groff)
            .args(["-ww", "-man", "-Tutf8", &format!("{dir}/{file}")])
            .output()
            .unwrap();
        assert!(out.status.success());
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(warnings.is_empty(), "{file}: {warnings}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("keepalive"));
    }
}

/// The bash completion, loaded into bash, completes a flag's prefix and a
/// closed set of values; zsh's and fish's parse in their shells (when
/// installed).
#[test]
fn shell_completions_complete_flags_and_values() {
    let script = String::from_utf8(holdline(&["completions", "bash"]).stdout).unwrap();
    let complete = |words: &str, cword: usize| {
        let program = format!(
            "{script}\nCOMP_WORDS=({words}); COMP_CWORD={cword}; _holdline; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = Command::new("bash")
            .args(["--norc", "-c", &program])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(complete("holdline --keepal", 1), "--keepalive-timeout\n");
    assert_eq!(
        complete("holdline --log-format ''", 2),
        "combined\ncommon\njson\n"
    );
    assert_eq!(complete("holdline --unknown-host 4", 2), "404\n421\n");
    assert_eq!(complete("holdline completions ''", 2), "bash\nzsh\nfish\n");
    assert!(complete("holdline --cli", 1).contains("--client-rate\n"));
    for (shell, check) in [("zsh", &["-n"][..]), ("fish", &["--no-execute"][..])] {
        let script = holdline(&["completions", shell]).stdout;
        assert!(!script.is_empty());
        let Some(program) = peer_program(shell) else {
            continue;
        };
        let path = std::env::temp_dir().join(format!(
            "holdline-completion-{}.{shell}",
            std::process::id()
        ));
        std::fs::write(&path, &script).unwrap();
        let out = Command::new(program)
            .args(check)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&path);
    }
    assert!(!holdline(&["completions", "tcsh"]).status.success());
}

fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(needle), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_flag_is_a_one_line_error() {
    assert_one_line_error(&holdline(&["--no-such-flag"]), "no-such-flag");
    assert_one_line_error(&holdline(&["--max-requests", "many"]), "max-requests");
    assert_one_line_error(&holdline(&["--listen", "nowhere"]), "listen");
}

#[test]
fn unreadable_root_is_a_one_line_error() {
    let out = holdline(&["--listen", "127.0.0.1:0", "/no/such/dir"]);
    assert_one_line_error(&out, "/no/such/dir");
    let site = Site::new();
    let file = site.root().join("hello.txt");
    let out = holdline(&["--listen", "127.0.0.1:0", file.to_str().unwrap()]);
    assert_one_line_error(&out, "hello.txt");
}

#[test]
fn busy_port_is_a_one_line_error() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let addr = server.addr.to_string();
    let out = holdline(&["--listen", &addr, site.root().to_str().unwrap()]);
    assert_one_line_error(&out, &addr);
}

#[test]
fn listens_on_ipv6_and_several_addresses() {
    let site = Site::new();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdline"));
    cmd.args(["--listen", "127.0.0.1:0", "--listen", "[::1]:0"])
        .arg(site.root());
    let server = match Server::spawn(cmd) {
        Ok(s) => s,
        Err(e) if e.contains("::1") => {
            skip(&format!("no IPv6 loopback here: {e}"));
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let log = server.log_text();
    let v6: std::net::SocketAddr = log
        .split("http://")
        .filter_map(|s| s.split('/').next())
        .filter_map(|a| a.parse().ok())
        .find(|a: &std::net::SocketAddr| a.is_ipv6())
        .expect("an IPv6 listener in the start line");
    let mut s = std::net::TcpStream::connect(v6).unwrap();
    assert_eq!(exchange(&mut s, &get("/hello.txt")).body, b"hello\n");
}

/// README's configuration table and `--help` come from the same table;
/// this keeps README honest.
#[test]
fn readme_table_matches_the_options() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let defaults = Config::default();
    let rows: Vec<(String, String, String)> = readme
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let flag = cells[1]
                .trim_matches('`')
                .split(' ')
                .next()
                .unwrap()
                .to_string();
            let sighup = cells.get(4).copied().unwrap_or("").to_string();
            (flag, cells[2].trim_matches('`').to_string(), sighup)
        })
        .collect();
    for opt in OPTIONS
        .iter()
        .filter(|o| o.flag != "--help" && o.flag != "--version")
    {
        let row = rows.iter().find(|(f, _, _)| f == opt.flag);
        let Some((_, default, sighup)) = row else {
            panic!("README's table lacks {}", opt.flag);
        };
        // The SIGHUP column says what a reload does with the option.
        assert_eq!(
            sighup == "applied",
            opt.live(),
            "README's SIGHUP column for {}: {sighup}",
            opt.flag
        );
        assert_eq!(
            *default,
            opt.shown(&defaults),
            "README default of {}",
            opt.flag
        );
    }
    for (flag, _, _) in &rows {
        assert!(
            OPTIONS.iter().any(|o| o.flag == flag),
            "README lists {flag}, which does not exist"
        );
    }
}

/// The uid and gid lines of /proc/PID/status: (real, effective, saved,
/// filesystem) each.
fn ids(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"))
}

#[test]
fn user_switches_away_from_root_once_listening() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip("--user needs root (CI runs as root)");
        return;
    }
    let site = common::Site::new();
    // ROOT must stay readable by nobody, as it would be in production.
    let mut dir = site.root();
    while dir.pop() {
        use std::os::unix::fs::PermissionsExt;
        if dir.starts_with(std::env::temp_dir()) && dir != std::env::temp_dir() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let server = common::Server::start(&site.root(), &["--user", "nobody"]);
    let (uid, gid) = ids(server.pid());
    assert_eq!(uid, "65534 65534 65534 65534");
    assert_eq!(gid, "65534 65534 65534 65534");
    assert!(
        server
            .log_text()
            .contains("switched to user nobody (uid 65534")
    );
    let mut s = server.connect();
    assert_eq!(
        common::exchange(&mut s, &common::get("/hello.txt")).status,
        200
    );
}

#[test]
fn root_without_user_is_warned_and_user_without_root_is_an_error() {
    let site = common::Site::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let server = common::Server::start(&site.root(), &[]);
        assert!(server.log_text().contains("running as root: pass --user"));
        let err = common::Server::try_start(&site.root(), &["--user", "no-such-user-here"])
            .err()
            .expect("unknown user");
        assert!(
            err.contains("no such user or group: no-such-user-here"),
            "{err}"
        );
    } else {
        let err = common::Server::try_start(&site.root(), &["--user", "nobody"])
            .err()
            .expect("not root");
        assert!(
            err.contains("--user needs the server to be started as root"),
            "{err}"
        );
    }
}

#[test]
fn unix_socket_listener_serves_curl_and_is_removed_at_exit() {
    let site = common::Site::new();
    let dir = common::TempDir::new("unix");
    let sock = dir.path().join("holdline.sock");
    // A stale socket file (no server behind it) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let listen = format!("unix:{}", sock.display());
    let mut server = common::Server::start(
        &site.root(),
        &["--listen", "127.0.0.1:0", "--listen", &listen],
    );
    assert!(
        server
            .log_text()
            .contains(&format!("unix:{}", sock.display()))
    );
    // Raw HTTP over the socket, keep-alive and all.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.contains("\r\n\r\nhello\n"), "{all}");
    assert!(all.ends_with("\r\n\r\na\n"), "{all}");
    // A second server cannot take a live socket.
    let err = common::Server::try_start(&site.root(), &["--listen", &listen]).err();
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("cannot listen on unix:")),
        "{err:?}"
    );
    if let Some(curl) = common::peer_program("curl") {
        let out = Command::new(curl)
            .args(["-sS", "--unix-socket", sock.to_str().unwrap()])
            .args(["http://localhost/hello.txt", "http://localhost/a.txt"])
            .args(["-w", "[%{num_connects}]"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n[1]a\n[0]");
    }
    server.signal(libc::SIGTERM);
    assert_eq!(
        server.wait_exit(std::time::Duration::from_secs(10)),
        Some(0)
    );
    assert!(!sock.exists(), "the socket file goes with the server");
}

#[test]
fn nginx_proxies_to_a_unix_socket_with_upstream_keep_alive() {
    let Some(nginx) = common::peer_program("nginx") else {
        return;
    };
    let site = common::Site::new();
    let dir = common::TempDir::new("nginx-unix");
    let sock = dir.path().join("holdline.sock");
    let listen = format!("unix:{}", sock.display());
    let server = common::Server::start(
        &site.root(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            &listen,
            "--status-path",
            "/status",
        ],
    );
    // nginx in front, on a port of its own, keeping up to 4 upstream
    // connections alive (proxy_http_version 1.1, Connection "").
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prefix = dir.path();
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    let conf = format!(
        "{user}\ndaemon off;\nmaster_process off;\nworker_processes 1;\npid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\nevents {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {p}/body;\n proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fastcgi;\n uwsgi_temp_path {p}/uwsgi;\n scgi_temp_path {p}/scgi;\n\
         upstream holdline {{ server unix:{sock}; keepalive 4; }}\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://holdline;\n\
         proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n}}\n",
        p = prefix.display(),
        sock = sock.display(),
    );
    std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
    /// Kills nginx when the test ends, however it ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _nginx = Kill(
        Command::new(nginx)
            .args(["-p", prefix.to_str().unwrap(), "-c"])
            .arg(prefix.join("nginx.conf"))
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let front: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(
        common::wait_until(std::time::Duration::from_secs(10), || {
            std::net::TcpStream::connect(front).is_ok()
        }),
        "nginx did not start: {}",
        std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default()
    );
    let handled = || common::stub_status(&server).handled;
    let before = handled();
    // 40 requests, each on a new client connection to nginx.
    for i in 0..40 {
        let mut s = std::net::TcpStream::connect(front).unwrap();
        let path = if i % 2 == 0 { "/hello.txt" } else { "/a.txt" };
        let r = common::exchange(
            &mut s,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body_text(), if i % 2 == 0 { "hello\n" } else { "a\n" });
    }
    // nginx reused its upstream connections over the unix socket: a few
    // for 40 requests (the status requests are one connection each).
    let upstream = handled() - before - 1;
    assert!(
        (1..=4).contains(&upstream),
        "{upstream} upstream connections for 40 requests"
    );
}
