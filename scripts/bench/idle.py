"""Opens N keep-alive connections to HOST:PORT (over TLS when the fourth
argument is `tls`), makes one request on each, and holds them all open;
prints 'ready' and waits for stdin to close."""
import sys

from client import connect, get_1k

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tls = len(sys.argv) > 4 and sys.argv[4] == "tls"
conns = []
for _ in range(n):
    sock = connect(host, port, tls)
    get_1k(sock)
    conns.append(sock)
print("ready", flush=True)
sys.stdin.read()
