"""Alerts that reach people: a webhook (Slack-compatible JSON) and e-mail (SMTP).

`Notifier.update` gets the alerts firing now, every time the rules are evaluated. Each channel is
told once when a rule starts firing (again after ``repeat_s`` while it keeps firing) and once when
it resolves. What a channel has been told is remembered per rule, so a delivery that fails (the
receiver down, a timeout) is simply tried again at the next evaluation, and one channel failing
never holds up another. Failures are logged in one line and counted, never raised.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Literal, Protocol

from fusionrec.monitoring.alert_config import AlertConfig, EmailConfig
from fusionrec.monitoring.alerts import Alert

logger = logging.getLogger("fusionrec.alerts")

State = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Notice:
    """What a channel is told about one rule."""

    rule: str
    state: State
    message: str
    service: str
    at: datetime

    @property
    def text(self) -> str:
        mark = "ALERT" if self.state == "firing" else "RESOLVED"
        return f"[{self.service}] {mark} {self.rule}: {self.message}"


class Channel(Protocol):
    name: str

    def send(self, notice: Notice) -> None:
        """Deliver ``notice``; raise `OSError` (or a subclass) when it did not arrive."""


class WebhookChannel:
    """POSTs ``{"text": ..., "fusionrec": {...}}``: Slack's and Mattermost's incoming webhooks show
    ``text``; other receivers read the structured part."""

    name = "webhook"

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def send(self, notice: Notice) -> None:
        body = {
            "text": notice.text,
            "fusionrec": {
                "rule": notice.rule,
                "state": notice.state,
                "message": notice.message,
                "service": notice.service,
                "at": notice.at.isoformat(),
            },
        }
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
            if not 200 <= answer.status < 300:
                raise OSError(f"webhook answered {answer.status}")


class EmailChannel:
    """One message per notice through an SMTP server (STARTTLS and login when configured)."""

    name = "email"

    def __init__(self, config: EmailConfig, timeout_s: float = 10.0) -> None:
        self.config = config
        self.timeout_s = timeout_s

    def send(self, notice: Notice) -> None:
        cfg = self.config
        message = EmailMessage()
        message["Subject"] = notice.text
        message["From"] = cfg.sender
        message["To"] = ", ".join(cfg.to)
        message.set_content(
            f"{notice.text}\n\nrule: {notice.rule}\nstate: {notice.state}\nat: {notice.at.isoformat()}\n"
        )
        with smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout_s) as smtp:
            if cfg.starttls:
                smtp.starttls()
            if cfg.username is not None and cfg.password is not None:
                smtp.login(cfg.username, cfg.password.get_secret_value())
            smtp.send_message(message)


def channels_for(config: AlertConfig) -> list[Channel]:
    """The channels ``config`` names (none: alerts are logged and counted only)."""
    channels: list[Channel] = []
    if config.webhook_url:
        channels.append(WebhookChannel(config.webhook_url))
    if config.email is not None:
        channels.append(EmailChannel(config.email))
    return channels


class Notifier:
    """Tells each channel about rules that start firing and rules that resolve, once each."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        service: str = "fusionrec",
        repeat_s: float | None = None,
        on_delivery: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channels = list(channels)
        self.service = service
        self.repeat_s = repeat_s
        self.on_delivery = on_delivery  # (channel, "sent" | "failed"), e.g. a Prometheus counter
        self.clock = clock
        # channel -> rule -> (state it was told, when)
        self._told: dict[str, dict[str, tuple[State, float]]] = {c.name: {} for c in self.channels}

    def update(self, firing: Sequence[Alert]) -> list[Notice]:
        """Send what each channel has not been told yet; returns the notices delivered."""
        now = self.clock()
        current = {alert.rule: alert.message for alert in firing}
        delivered = []
        for channel in self.channels:
            told = self._told[channel.name]
            due = [
                (rule, "firing", message)
                for rule, message in current.items()
                if rule not in told or told[rule][0] == "resolved" or self._repeat_due(told[rule][1], now)
            ]
            due += [
                (rule, "resolved", "back within its threshold")
                for rule, (state, _) in told.items()
                if state == "firing" and rule not in current
            ]
            for rule, state, message in due:
                notice = Notice(rule, state, message, self.service, datetime.now(UTC))  # type: ignore[arg-type]
                if self._deliver(channel, notice):
                    told[rule] = (notice.state, now)
                    delivered.append(notice)
        return delivered

    def _repeat_due(self, told_at: float, now: float) -> bool:
        return self.repeat_s is not None and now - told_at >= self.repeat_s

    def _deliver(self, channel: Channel, notice: Notice) -> bool:
        try:
            channel.send(notice)
        except (TimeoutError, OSError, smtplib.SMTPException, urllib.error.URLError) as error:
            logger.warning(
                "alert %s (%s) not delivered by %s: %s: %s; retried at the next evaluation",
                notice.rule,
                notice.state,
                channel.name,
                type(error).__name__,
                error,
            )
            self._count(channel.name, "failed")
            return False
        self._count(channel.name, "sent")
        return True

    def _count(self, channel: str, outcome: str) -> None:
        if self.on_delivery is not None:
            self.on_delivery(channel, outcome)
