"""A lean HTTP/1.1 keep-alive client for the open loop of `bench_serving.py`.

httpx cost the client 1.5-2 ms of CPU per request on this machine, so at 300 requests/s the client
needed most of a core beside the server on two; this one writes the request bytes itself and
reads the status, the headers it needs and the body: a small fraction of that. One `Connection`
carries one request at a time (no pipelining).
"""

from __future__ import annotations

import asyncio
import contextlib


class Connection:
    """One keep-alive connection to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request and read its answer: (status, body). Reconnects when closed."""
        if self.writer is None or self.writer.is_closing():
            await self.open()
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        status = int(headers[9:12])
        lower = headers.lower()
        if b"transfer-encoding: chunked" in lower:
            answer = await self._chunked()
        else:
            start = lower.find(b"content-length:")
            length = int(lower[start + 15 : lower.index(b"\r\n", start)]) if start >= 0 else 0
            answer = await self.reader.readexactly(length)
        if b"connection: close" in lower:
            await self.close()
        return status, answer

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
