"""One guarded Redis client shared by the online state, the caches and the rate limits.

Every call goes through `RedisGuard.call`: a failure (server down, timeout) raises
`RedisUnavailableError` and opens the circuit for ``retry_s`` seconds, during which calls fail at once
instead of waiting on a dead server. Callers catch it and answer degraded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fusionrec.extras import require

logger = logging.getLogger(__name__)
T = TypeVar("T")


class RedisUnavailableError(RuntimeError):
    """Redis did not answer (or the circuit is open after a recent failure)."""


def check_reachable(url: str, timeout_s: float = 2.0) -> None:
    """Raise `RedisUnavailableError` naming ``url`` and the reason unless Redis answers a PING."""
    redis: Any = require("redis", "shared online state in Redis")
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        raise RedisUnavailableError(f"cannot reach Redis at {url}: {error}") from error
    finally:
        client.close()


class RedisGuard:
    """A redis-py client with short timeouts and a circuit breaker."""

    def __init__(
        self, url: str, *, timeout_s: float = 0.25, retry_s: float = 2.0, prefix: str = "fr:"
    ) -> None:
        redis: Any = require("redis", "shared online state in Redis")
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        self.url = url
        self.prefix = prefix
        self.retry_s = retry_s
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(client)``; raise `RedisUnavailableError` on any Redis or socket failure."""
        if not self.available:
            raise RedisUnavailableError("Redis is unavailable (recent failure)")
        try:
            return fn(self.client)
        except self._errors as error:
            with self._lock:
                if self.available:
                    logger.warning(
                        "Redis failed (%s); degraded for %.1f s", type(error).__name__, self.retry_s
                    )
                self._down_until = time.monotonic() + self.retry_s
            raise RedisUnavailableError(f"Redis failed: {type(error).__name__}") from None

    def ping(self) -> bool:
        try:
            return bool(self.call(lambda r: r.ping()))
        except RedisUnavailableError:
            return False

    def close(self) -> None:
        self.client.close()
