"""Loads a page of N assets like a browser: index.html first, then the
assets over at most PARALLEL connections at a time.

    python3 load_page.py HOST:PORT MODE [PARALLEL] [ASSETS] [TLS]

MODE is `keepalive` (HTTP/1.1, connections reused), or `http10` (HTTP/1.0
without keep-alive: a new connection per request). Whether the server
closes after each response (`--keepalive-timeout 0`) is the server's
choice; the loader reconnects whenever a response says close. TLS, if
given, is `tls1.2` or `tls1.3` (every new connection makes a full
handshake), or `tls1.2-resume` / `tls1.3-resume` (a new connection
resumes the last session any connection got, as browsers do; the
certificate is not checked: the servers use a throwaway one). Prints
JSON: wall seconds, connections opened, requests, and TLS handshakes
resumed.
"""
import json
import queue
import socket
import ssl
import sys
import threading
import time

addr, mode = sys.argv[1], sys.argv[2]
parallel = int(sys.argv[3]) if len(sys.argv) > 3 else 6
assets = int(sys.argv[4]) if len(sys.argv) > 4 else 100
tls = sys.argv[5] if len(sys.argv) > 5 else ""
host, port = addr.rsplit(":", 1)
port = int(port)
opened = 0
resumed = 0
session = None
lock = threading.Lock()
context = None
if tls:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    version = ssl.TLSVersion.TLSv1_3 if tls.startswith("tls1.3") else ssl.TLSVersion.TLSv1_2
    context.minimum_version = context.maximum_version = version
    context.set_alpn_protocols(["http/1.1"])


def connect():
    global opened, resumed
    with lock:
        opened += 1
        last = session if tls.endswith("-resume") else None
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is not None:
        s = context.wrap_socket(s, server_hostname="page", session=last)
        with lock:
            resumed += s.session_reused
    return s


def remember(conn):
    """Keeps the connection's session for the next connect (TLS 1.3
    tickets arrive after the handshake, with the first response)."""
    global session
    if context is not None and conn.session is not None:
        with lock:
            session = conn.session


def fetch(conn, path):
    """Returns (body, connection still usable)."""
    if conn is None:
        conn = connect()
    version = "HTTP/1.0" if mode == "http10" else "HTTP/1.1"
    conn.sendall(f"GET {path} {version}\r\nHost: page\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise RuntimeError("closed before the head")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").lower().split("\r\n")
    length = next(int(l.split(":", 1)[1]) for l in lines if l.startswith("content-length:"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise RuntimeError("closed in the body")
        body += chunk
    closes = mode == "http10" or any(l.startswith("connection:") and "close" in l for l in lines)
    remember(conn)
    if closes:
        conn.close()
        return body, None
    return body, conn


start = time.monotonic()
first, conn = fetch(None, "/index.html")
paths = [l.split('href="')[1].split('"')[0] for l in first.decode().splitlines() if 'href="' in l]
work = queue.Queue()
for p in paths[:assets]:
    work.put(p)


def worker(conn):
    while True:
        try:
            path = work.get_nowait()
        except queue.Empty:
            break
        _, conn = fetch(conn, path)
    if conn is not None:
        conn.close()


threads = [threading.Thread(target=worker, args=(conn if i == 0 else None,)) for i in range(parallel)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.monotonic() - start
print(json.dumps({"wall_s": round(wall, 3), "connections": opened, "requests": len(paths[:assets]) + 1, "resumed": resumed}))
