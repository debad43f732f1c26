"""Prometheus metrics of the service, one registry per app (so tests can build several apps).

Latency histograms per endpoint (the route template, never the raw path), request and error
counts, fallbacks by reason, the active model version, event lag. A rolling window of recent
requests feeds the alert rules (`fusionrec.monitoring.alerts`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics", "WindowStats"]

_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class WindowStats:
    """Summary of the requests of a recent window."""

    requests: int
    errors: int
    p99_ms: float
    exposures: int
    clicks: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def ctr(self) -> float:
        return self.clicks / self.exposures if self.exposures else 0.0


class _Ring:
    """The last ``capacity`` rows of ``width`` floats in a numpy ring buffer.

    Appends are O(1); `rows` copies the buffer once, so a window over 100k requests is a few
    vectorised masks (~1 ms) rather than a Python loop over tuples that holds the GIL for tens of
    milliseconds and stalls the requests in flight.
    """

    def __init__(self, capacity: int, width: int) -> None:
        self._data = np.zeros((capacity, width), dtype=np.float64)
        self._next = 0
        self._full = False
        self._lock = threading.Lock()

    def append(self, *row: float) -> None:
        with self._lock:
            self._data[self._next] = row
            self._next += 1
            if self._next == len(self._data):
                self._next, self._full = 0, True

    def rows(self) -> np.ndarray:
        with self._lock:
            return self._data.copy() if self._full else self._data[: self._next].copy()


class ServiceMetrics:
    def __init__(self, window: int = 100_000) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "fusionrec_request_seconds",
            "Request latency by endpoint",
            ["endpoint", "method"],
            registry=r,
            buckets=_BUCKETS,
        )
        self.requests = Counter(
            "fusionrec_requests",
            "Requests by endpoint and status code",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.errors = Counter("fusionrec_errors", "Server errors (5xx) by endpoint", ["endpoint"], registry=r)
        self.answers = Counter(
            "fusionrec_recommendations", "Recommendation answers", ["endpoint"], registry=r
        )
        self.fallbacks = Counter(
            "fusionrec_fallbacks", "Answers given by a fallback, by reason", ["reason"], registry=r
        )
        self.degraded = Counter(
            "fusionrec_degraded", "Answers flagged degraded, by cause", ["cause"], registry=r
        )
        self.model_version = Gauge(
            "fusionrec_active_model_version", "1 for the active model version", ["version"], registry=r
        )
        self.events = Counter(
            "fusionrec_events", "Events received, by outcome", ["outcome", "channel"], registry=r
        )
        self.event_lag = Gauge(
            "fusionrec_event_lag_seconds", "Now minus the timestamp of the newest event stored", registry=r
        )
        self.stream_pending = Gauge(
            "fusionrec_stream_pending", "Stream messages read but not yet acked", registry=r
        )
        self.exposures = Counter("fusionrec_exposures", "Recommendation lists shown", registry=r)
        self.clicks = Counter("fusionrec_exposure_clicks", "Clicks on recently shown items", registry=r)
        self.alerts = Counter("fusionrec_alerts", "Alerts fired, by rule", ["rule"], registry=r)
        self.alert_notices = Counter(
            "fusionrec_alert_notices",
            "Alert notices (firing or resolved) by channel and outcome (sent, failed)",
            ["channel", "outcome"],
            registry=r,
        )
        self._active: str | None = None
        self._window = _Ring(window, 3)  # (monotonic time, seconds, is server error)
        self._ctr = _Ring(window, 3)  # (monotonic time, exposures, clicks)
        self._lock = threading.Lock()

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.latency.labels(endpoint, method).observe(seconds)
        self.requests.labels(endpoint, method, str(status)).inc()
        if status >= 500:
            self.errors.labels(endpoint).inc()
        self._window.append(time.monotonic(), seconds, float(status >= 500))

    def set_active(self, version: str) -> None:
        with self._lock:
            if self._active is not None:
                self.model_version.labels(self._active).set(0)
            self.model_version.labels(version).set(1)
            self._active = version

    def exposed(self, n: int = 1) -> None:
        self.exposures.inc(n)
        self._ctr.append(time.monotonic(), n, 0)

    def clicked(self, n: int) -> None:
        if n:
            self.clicks.inc(n)
            self._ctr.append(time.monotonic(), 0, n)

    def window(self, seconds: float, end_ago: float = 0.0) -> WindowStats:
        """Stats of requests in ``[now - end_ago - seconds, now - end_ago)``."""
        now = time.monotonic()
        start, end = now - end_ago - seconds, now - end_ago
        requests, shows = self._window.rows(), self._ctr.rows()
        requests = requests[(requests[:, 0] >= start) & (requests[:, 0] < end)]
        shows = shows[(shows[:, 0] >= start) & (shows[:, 0] < end)]
        return WindowStats(
            requests=len(requests),
            errors=int(requests[:, 2].sum()),
            p99_ms=float(np.percentile(requests[:, 1], 99) * 1000) if len(requests) else 0.0,
            exposures=int(shows[:, 1].sum()),
            clicks=int(shows[:, 2].sum()),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
