"""A TCP proxy that makes loopback behave like a link with a round-trip time.

    python3 latency_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT RTT_MS

Each direction is delayed by half the RTT, chunk by chunk and in order.
A new connection also costs one more RTT before its first byte goes on:
the TCP handshake a real client pays before it can send. So the first
request on a new connection costs 2 RTT and a request on a reused
connection 1 RTT, as on a real link. (netem is not available here.)
"""
import asyncio
import sys
import time


async def pipe(reader, writer, delay, start_after):
    """Forwards reader -> writer, each chunk `delay` seconds after it was
    read, never before `start_after` (monotonic time)."""
    queue = asyncio.Queue()

    async def receive():
        wait = start_after - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic() + delay, data))
            if not data:
                return

    async def deliver():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                try:
                    writer.write_eof()
                except OSError:
                    pass
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(receive(), deliver())
    except (ConnectionError, OSError):
        writer.close()


async def main():
    listen_port = int(sys.argv[1])
    up_host, up_port = sys.argv[2].rsplit(":", 1)
    rtt = int(sys.argv[3]) / 1000.0

    async def handle(client_r, client_w):
        accepted = time.monotonic()
        try:
            up_r, up_w = await asyncio.open_connection(up_host, int(up_port))
        except OSError:
            client_w.close()
            return
        # Client to server: nothing before the handshake's RTT is over.
        await asyncio.gather(
            pipe(client_r, up_w, rtt / 2, accepted + rtt),
            pipe(up_r, client_w, rtt / 2, 0),
        )
        for w in (client_w, up_w):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, backlog=512)
    print("proxy ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
