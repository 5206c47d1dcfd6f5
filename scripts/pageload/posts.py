"""Sends POST requests to HOST:PORT, each after a pause drawn around a
target idle time, and counts the statuses.

    python3 posts.py HOST:PORT COUNT IDLE_MS SPREAD_MS

Each pause is IDLE_MS + uniform(-SPREAD_MS, +SPREAD_MS): requests land
around the moment an idle upstream connection times out. Prints JSON
{status: count}.
"""
import json
import random
import socket
import sys
import time

addr, count, idle_ms, spread_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
host, port = addr.rsplit(":", 1)
random.seed(42)
counts = {}
for _ in range(count):
    time.sleep(max(0.0, (idle_ms + random.uniform(-spread_ms, spread_ms)) / 1000.0))
    s = socket.create_connection((host, int(port)))
    s.sendall(b"POST /form HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "no response"
    counts[status] = counts.get(status, 0) + 1
print(json.dumps(counts, sort_keys=True))
