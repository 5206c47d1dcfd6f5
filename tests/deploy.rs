//! Deploys while serving, the way static sites deploy: a new release
//! directory and `ln -sfn release-2 current` (Capistrano, Deployer, rsync
//! and a symlink flip), or a file replaced by rename. New requests see
//! the new release within `--file-cache-valid` (at once on SIGHUP);
//! downloads already under way finish with the bytes they started with:
//! never a mix of two releases in one response.

mod common;

use common::*;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A release's big file: 2 MiB of the release's own byte.
fn release_bytes(tag: u8) -> Vec<u8> {
    vec![tag; 2 << 20]
}

/// `ln -sfn target link`: a new symlink renamed over the old one, so the
/// link is never missing.
fn flip(link: &Path, target: &str) {
    let next = link.with_extension("next");
    let _ = std::fs::remove_file(&next);
    std::os::unix::fs::symlink(target, &next).unwrap();
    std::fs::rename(&next, link).unwrap();
}

/// Starts `n` downloads of `path` on small-window sockets, each reading
/// its first bytes, and returns them (their rest still on the server).
fn start_downloads(server: &Server, path: &str, n: usize) -> Vec<(std::net::TcpStream, Vec<u8>)> {
    (0..n)
        .map(|_| {
            let mut s = connect_small_window(server.addr, Duration::from_secs(2)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(get(path).as_bytes()).unwrap();
            let mut got = vec![0u8; 16 * 1024];
            let n = s.read(&mut got).unwrap();
            got.truncate(n);
            (s, got)
        })
        .collect()
}

/// Reads each download to its end, in parallel; returns each body.
fn finish_downloads(downloads: Vec<(std::net::TcpStream, Vec<u8>)>) -> Vec<Vec<u8>> {
    let barrier = Arc::new(Barrier::new(downloads.len()));
    let threads: Vec<_> = downloads
        .into_iter()
        .map(|(mut s, mut got)| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut buf = Vec::new();
                let mut framed = std::io::Cursor::new(std::mem::take(&mut got)).chain(&mut s);
                let (head, body) = read_framed(&mut framed, &mut buf);
                assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
                body
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn a_flipped_symlink_root_serves_the_new_release_and_downloads_keep_theirs() {
    let dir = TempDir::new("deploy");
    for (release, tag) in [("release-1", b'1'), ("release-2", b'2')] {
        dir.write(
            &format!("{release}/index.html"),
            format!("<p>{release}</p>\n"),
        );
        dir.write(&format!("{release}/big.bin"), release_bytes(tag));
    }
    let current = dir.path().join("current");
    flip(&current, "release-1");
    let server = Server::start(&current, &["--max-requests", "0"]);
    let index = || {
        let mut s = server.connect();
        exchange(&mut s, &get("/")).body_text()
    };
    assert_eq!(index(), "<p>release-1</p>\n");
    // 100 downloads of release 1's big file under way...
    let downloads = start_downloads(&server, "/big.bin", 100);
    // ... when the deploy flips the link.
    flip(&current, "release-2");
    let flipped = Instant::now();
    // New requests see release 2 within --file-cache-valid (1 s).
    assert!(
        wait_until(Duration::from_secs(3), || index() == "<p>release-2</p>\n"),
        "still {}",
        index()
    );
    let seen_after = flipped.elapsed();
    assert!(seen_after < Duration::from_millis(1500), "{seen_after:?}");
    eprintln!("deploy: the flip was served {seen_after:?} after it, 100 downloads under way");
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/big.bin"));
    assert!(
        r.body == release_bytes(b'2'),
        "a new download is release 2's"
    );
    // Every download that started before the flip is release 1's, whole.
    for body in finish_downloads(downloads) {
        assert!(
            body == release_bytes(b'1'),
            "one whole version, never a mix"
        );
    }
    assert!(
        server.log_text().contains("ROOT now names"),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_sighup_follows_a_flipped_root_at_once() {
    let dir = TempDir::new("deploy-hup");
    for release in ["r1", "r2"] {
        dir.write(&format!("{release}/a.txt"), format!("{release}\n"));
    }
    let current = dir.path().join("current");
    flip(&current, "r1");
    // Files trusted for a minute: without the SIGHUP, the flip would be
    // seen only then.
    let server = Server::start(&current, &["--file-cache-valid", "60"]);
    let a = || {
        let mut s = server.connect();
        exchange(&mut s, &get("/a.txt")).body_text()
    };
    assert_eq!(a(), "r1\n");
    flip(&current, "r2");
    server.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(2), || a() == "r2\n"),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_file_replaced_by_rename_during_downloads_gives_each_one_whole_version() {
    let site = Site::new();
    site.dir.write("www/big.bin", release_bytes(b'A'));
    let server = Server::start(&site.root(), &[]);
    let downloads = start_downloads(&server, "/big.bin", 100);
    // rsync's way: write beside, rename over.
    let next = site.root().join(".big.bin.tmp");
    std::fs::write(&next, release_bytes(b'B')).unwrap();
    std::fs::rename(&next, site.root().join("big.bin")).unwrap();
    for body in finish_downloads(downloads) {
        assert!(
            body == release_bytes(b'A'),
            "one whole version, never a mix"
        );
    }
    // Once revalidated (--file-cache-valid 1 s), new downloads get B.
    assert!(wait_until(Duration::from_secs(3), || {
        let mut s = server.connect();
        exchange(&mut s, &get("/big.bin")).body == release_bytes(b'B')
    }));
}
