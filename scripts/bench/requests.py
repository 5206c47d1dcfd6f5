"""Makes N keep-alive requests for /1k.txt on one connection, one at a time."""
import sys

from client import connect, get_1k

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sock = connect(host, port)
for _ in range(n):
    get_1k(sock)
