"""What the benchmark helpers share: one keep-alive GET of /1k.txt."""
import socket
import ssl

REQUEST = b"GET /1k.txt HTTP/1.1\r\nHost: bench\r\n\r\n"


def get_1k(sock):
    """Sends one request on `sock` and reads its 1 KiB answer whole."""
    sock.sendall(REQUEST)
    got = b""
    while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 1024:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("closed early")
        got += chunk


def connect(host, port, tls=False):
    """A TCP connection, or with `tls` a TLS one (no certificate check:
    the benchmark's servers use a throwaway certificate)."""
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        sock = ctx.wrap_socket(sock, server_hostname="bench")
    return sock
