"""Opens N keep-alive connections to HOST:PORT, makes one request on each,
and holds them all open; prints 'ready' and waits for stdin to close."""
import socket
import sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = []
request = b"GET /1k.txt HTTP/1.1\r\nHost: bench\r\n\r\n"
for _ in range(n):
    s = socket.create_connection((host, port))
    s.sendall(request)
    got = b""
    while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 1024:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("closed early")
        got += chunk
    conns.append(s)
print("ready", flush=True)
sys.stdin.read()
