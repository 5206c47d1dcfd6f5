"""Opens N keep-alive connections to HOST:PORT, makes one request on each,
and holds them all open; prints 'ready' and waits for stdin to close."""
import sys

from client import connect, get_1k

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = []
for _ in range(n):
    sock = connect(host, port)
    get_1k(sock)
    conns.append(sock)
print("ready", flush=True)
sys.stdin.read()
