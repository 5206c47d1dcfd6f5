"""Makes N keep-alive requests for /1k.txt on one connection, one at a time."""
import socket
import sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
request = b"GET /1k.txt HTTP/1.1\r\nHost: bench\r\n\r\n"
for _ in range(n):
    s.sendall(request)
    got = b""
    while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 1024:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("closed early")
        got += chunk
