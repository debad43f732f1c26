"""Alert rules over the service's recent window: p99 latency, error rate, CTR drop.

`evaluate` is pure (stats in, firing alerts out) so it is tested without a clock; `AlertLoop`
runs it every ``interval_s`` in the service, logs each firing alert at WARNING (and counts it in
``fusionrec_alerts``) and tells people through the configured channels (`notify`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from fusionrec.monitoring.alert_config import AlertConfig
from fusionrec.monitoring.metrics import ServiceMetrics, WindowStats

logger = logging.getLogger("fusionrec.alerts")


@dataclass(frozen=True)
class Alert:
    rule: str
    message: str


def evaluate(current: WindowStats, previous: WindowStats, config: AlertConfig) -> list[Alert]:
    """The alerts that fire for ``current`` (with ``previous``, the window before, for CTR)."""
    alerts = []
    if current.requests >= config.min_requests:
        if current.p99_ms > config.p99_latency_ms:
            alerts.append(
                Alert("p99_latency", f"p99 latency {current.p99_ms:.1f} ms > {config.p99_latency_ms:g} ms")
            )
        if current.error_rate > config.error_rate:
            alerts.append(
                Alert("error_rate", f"error rate {current.error_rate:.2%} > {config.error_rate:.2%}")
            )
    if (
        current.exposures >= config.min_requests
        and previous.exposures >= config.min_requests
        and previous.ctr > 0
    ):
        drop = 1.0 - current.ctr / previous.ctr
        if drop > config.ctr_drop:
            alerts.append(
                Alert(
                    "ctr_drop",
                    f"CTR {current.ctr:.3%} fell {drop:.0%} from {previous.ctr:.3%} (> {config.ctr_drop:.0%})",
                )
            )
    return alerts


class AlertLoop:
    """Evaluates the rules periodically; `last` keeps the latest firing alerts (shown by /healthz)."""

    def __init__(self, metrics: ServiceMetrics, config: AlertConfig) -> None:
        from fusionrec.monitoring.notify import Notifier, channels_for

        self.metrics = metrics
        self.config = config
        self.last: list[Alert] = []
        self.notifier = Notifier(
            channels_for(config),
            service=config.service_name,
            repeat_s=config.repeat_s,
            on_delivery=lambda channel, outcome: metrics.alert_notices.labels(channel, outcome).inc(),
        )

    def check(self) -> list[Alert]:
        window = self.config.window_s
        alerts = evaluate(
            self.metrics.window(window), self.metrics.window(window, end_ago=window), self.config
        )
        for alert in alerts:
            logger.warning("ALERT %s: %s", alert.rule, alert.message)
            self.metrics.alerts.labels(alert.rule).inc()
        self.last = alerts
        self.notifier.update(alerts)
        return alerts

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval_s)
            try:
                await asyncio.to_thread(self.check)  # never on the event loop: requests keep flowing
            except Exception:  # an alert bug must not kill the service
                logger.exception("alert evaluation failed")
