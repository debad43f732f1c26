"""Redis Streams ingestion: a consumer group feeding the same path as POST /v1/events.

Each message holds one event: either a field ``event`` with the event as JSON, or the event's
fields directly. Messages are acknowledged only after their batch is committed to the store, so a
consumer killed mid-batch leaves them pending; on restart it reads its own pending messages
first (and claims ones left idle by dead consumers), and the store drops the repeats by
``event_id``: nothing lost, nothing doubled.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fusionrec.data.ingest import IngestReport
from fusionrec.extras import require

logger = logging.getLogger(__name__)

Sink = Callable[[list[dict[str, Any]], str], IngestReport]


@dataclass(frozen=True)
class StreamAddress:
    redis_url: str
    stream: str


def parse_stream_url(url: str) -> StreamAddress:
    """``redis://HOST:PORT/STREAM`` (or ``redis://HOST:PORT/DB/STREAM``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.netloc:
        raise ValueError(f"bad stream URL {url!r}: expected redis://HOST:PORT/STREAM")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) == 1:
        db, stream = "0", segments[0]
    elif len(segments) == 2 and segments[0].isdigit():
        db, stream = segments
    else:
        raise ValueError(
            f"bad stream URL {url!r}: expected redis://HOST:PORT/STREAM or redis://HOST:PORT/DB/STREAM"
        )
    return StreamAddress(f"{parts.scheme}://{parts.netloc}/{db}", stream)


def decode(fields: dict[str, str]) -> dict[str, Any]:
    """One message's event (a JSON ``event`` field, or the fields themselves)."""
    if "event" in fields:
        value = json.loads(fields["event"])
        if not isinstance(value, dict):
            raise ValueError("the event field must hold a JSON object")
        return value
    return dict(fields)


class StreamConsumer:
    """Reads a stream in a consumer group and hands batches to ``sink`` (commit), then acks them."""

    def __init__(
        self,
        url: str,
        sink: Sink,
        *,
        group: str = "fusionrec",
        consumer: str | None = None,
        batch: int = 1000,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
    ) -> None:
        redis: Any = require("redis", "a Redis stream")
        self.address = parse_stream_url(url)
        self.client = redis.Redis.from_url(self.address.redis_url, decode_responses=True)
        self.sink = sink
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-fusionrec"
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.stop_event = threading.Event()
        self.totals = IngestReport(source=f"stream:{self.address.stream}")
        self.bad_messages = 0

    def ensure_group(self) -> None:
        import redis

        try:
            self.client.xgroup_create(self.address.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _claim_stale(self) -> None:
        """Take over messages a dead consumer read but never acknowledged."""
        start = "0-0"
        while True:
            result = self.client.xautoclaim(
                self.address.stream,
                self.group,
                self.consumer,
                self.claim_idle_ms,
                start_id=start,
                count=self.batch,
            )
            if not result or len(result) < 2 or not result[1]:
                break
            start = result[0]
            if start in ("0-0", b"0-0"):
                break

    def process(self, messages: list[tuple[str, dict[str, str]]]) -> int:
        """Commit one batch, then acknowledge it; return how many messages it held."""
        if not messages:
            return 0
        rows = []
        for _, fields in messages:
            try:
                rows.append(decode(fields))
            except (ValueError, TypeError):
                self.bad_messages += 1  # unreadable: acknowledged (and counted) so it never blocks the group
                rows.append({"event_type": None, "raw_message": json.dumps(fields)})
        report = self.sink(rows, f"stream:{self.address.stream}")
        self.totals.merge(report)
        self.client.xack(self.address.stream, self.group, *[mid for mid, _ in messages])
        return len(messages)

    def run(self, *, max_messages: int | None = None, idle_exit: bool = False) -> IngestReport:
        """Consume until stopped (or ``max_messages`` read, or, with ``idle_exit``, the stream is drained)."""
        self.ensure_group()
        self._claim_stale()
        seen = 0
        position = "0"  # first our own pending messages (a previous run's unacknowledged ones)
        while not self.stop_event.is_set():
            count = self.batch if max_messages is None else min(self.batch, max_messages - seen)
            if count <= 0:
                break
            block = None if position == "0" else self.block_ms
            reply = self.client.xreadgroup(
                self.group, self.consumer, {self.address.stream: position}, count=count, block=block
            )
            messages = reply[0][1] if reply else []
            if position == "0" and not messages:
                position = ">"
                continue
            if not messages and idle_exit:
                break
            seen += self.process(messages)
        return self.totals

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        self.client.close()
