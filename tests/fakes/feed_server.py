"""A small HTTP/1.1 server on loopback for gathering tests and the benchmark.

Each path answers with a `Reply`: a status, headers, a body, and optionally bad behaviour: a delay,
a body trickled a few bytes at a time, an endless chunked body. The server records every request
(path and headers), so tests can check conditional requests and the User-Agent.

Runs its own event loop on a thread (`with FeedServer(routes) as server:`), or inside a
process for the benchmark (`serve_forever`), so that its work does not share the client's GIL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line
    trickle: float | None = None  # seconds between single bytes of the body
    endless: bool = False  # a chunked body that never ends
    content_length: bool = True  # False: chunked, so the size is not known up front


@dataclass
class Request:
    path: str
    headers: dict[str, str]


Route = Reply | Callable[[Request], Reply]

REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 304: "Not Modified", 404: "Not Found", 500: "Error"}


class FeedServer:
    def __init__(self, routes: dict[str, Route] | None = None, *, host: str = "127.0.0.1", latency: float = 0.0):
        self.routes: dict[str, Route] = dict(routes or {})
        self.host, self.latency = host, latency
        self.port = 0
        self.requests: list[Request] = []
        self.connections = 0  # accepted so far: tells whether clients keep connections alive
        self.in_flight = self.max_in_flight = 0  # requests being answered at once, and the most ever
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    # -- running -------------------------------------------------------------------------------

    async def start_async(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0, limit=1 << 16)
        self.port = self._server.sockets[0].getsockname()[1]

    def __enter__(self) -> FeedServer:
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start_async())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc_info) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5)

    # -- serving -------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                _method, path, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                request = Request(path, headers)
                self.requests.append(request)
                route = self.routes.get(path)
                reply = Reply(404, b"not found") if route is None else route(request) if callable(route) else route
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    await self._reply(writer, reply)
                finally:
                    self.in_flight -= 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _reply(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        if self.latency or reply.delay:
            await asyncio.sleep(self.latency + reply.delay)
        headers = dict(reply.headers)
        chunked = reply.endless or not reply.content_length
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        elif reply.status != 304:
            headers.setdefault("Content-Length", str(len(reply.body)))
        status = f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}\r\n"
        writer.write((status + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode("latin-1"))
        if reply.status == 304:
            await writer.drain()
            return
        if reply.endless:
            block = b"<item>" + b"x" * 65536 + b"</item>"
            while True:
                writer.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                await writer.drain()
        if reply.trickle is not None:
            for i in range(len(reply.body)):
                piece = reply.body[i : i + 1]
                writer.write(b"1\r\n" + piece + b"\r\n" if chunked else piece)
                await writer.drain()
                await asyncio.sleep(reply.trickle)
        elif chunked:
            step = 1 << 20
            for start in range(0, len(reply.body), step):
                piece = reply.body[start : start + step]
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await writer.drain()
        else:
            writer.write(reply.body)
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()


def serve_forever(servers: list[FeedServer], ready) -> None:
    """Run several servers in this process (the benchmark's server process); `ready` gets the ports."""

    async def main() -> None:
        for server in servers:
            await server.start_async()
        ready.send([server.port for server in servers])
        await asyncio.Event().wait()

    asyncio.run(main())
