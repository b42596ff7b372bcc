"""A TCP proxy that gives every request a round trip: what a client sends reaches the
server RTT_MS later; answers flow back at once. Over loopback it stands in for a link to
a far origin (a real round trip before each answer's first byte) where `tc netem` is not
available. A benchmark helper, not a test.

Usage: python3 bench/rttproxy.py LISTEN_PORT UPSTREAM_PORT RTT_MS
"""
import asyncio
import sys

LISTEN, UPSTREAM, RTT = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000.0


async def pipe(reader, writer, delay):
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            if delay:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except ConnectionError:
            pass


async def handle(c_reader, c_writer):
    try:
        u_reader, u_writer = await asyncio.open_connection("127.0.0.1", UPSTREAM)
    except OSError:
        c_writer.close()
        return
    await asyncio.gather(pipe(c_reader, u_writer, RTT), pipe(u_reader, c_writer, 0))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    async with server:
        await server.serve_forever()


asyncio.run(main())
