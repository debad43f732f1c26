"""Alerts that reach people (issue 26, part 5): a webhook (Slack-compatible JSON) and e-mail over
SMTP, each told once when a rule fires and once when it resolves, retried when delivery fails;
against real local receivers (an HTTP server, aiosmtpd's SMTP server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import free_port
from fusionrec.monitoring.alert_config import AlertConfig, EmailConfig
from fusionrec.monitoring.alerts import Alert
from fusionrec.monitoring.notify import EmailChannel, Notifier, WebhookChannel
from fusionrec.serving.app import create_app
from serving.conftest import make_settings

SLOW = Alert("p99_latency", "p99 latency 80.0 ms > 50 ms")


class Webhook:
    """A local webhook receiver on ``port`` that records the JSON bodies it is sent."""

    def __init__(self, port: int) -> None:
        self.port, self.bodies = port, []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    receiver = Webhook(free_port())
    yield receiver
    receiver.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[EmailConfig, list]]:
    aiosmtpd = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is a dev extra")
    received: list = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield (
        EmailConfig(host="127.0.0.1", port=port, sender="fusionrec@shop.example", to=["ops@shop.example"]),
        received,
    )
    controller.stop()


def states(bodies: list[dict]) -> list[tuple[str, str]]:
    return [(b["fusionrec"]["rule"], b["fusionrec"]["state"]) for b in bodies]


def test_each_channel_is_told_once_when_a_rule_fires_and_once_when_it_resolves(
    webhook: Webhook, mailbox: tuple[EmailConfig, list]
) -> None:
    email, mails = mailbox
    notifier = Notifier([WebhookChannel(webhook.url), EmailChannel(email)], service="shop-eu")
    notifier.update([SLOW])
    notifier.update([SLOW])  # still firing: nobody is told twice
    notifier.update([])
    notifier.update([])
    assert states(webhook.bodies) == [("p99_latency", "firing"), ("p99_latency", "resolved")]
    first = webhook.bodies[0]
    assert first["text"] == "[shop-eu] ALERT p99_latency: p99 latency 80.0 ms > 50 ms"  # what Slack shows
    subjects = [m.content.decode().split("Subject: ")[1].splitlines()[0] for m in mails]
    assert subjects == [
        "[shop-eu] ALERT p99_latency: p99 latency 80.0 ms > 50 ms",
        "[shop-eu] RESOLVED p99_latency: back within its threshold",
    ]
    assert all(m.rcpt_tos == ["ops@shop.example"] for m in mails)


def test_a_failed_delivery_is_retried_at_the_next_evaluation_and_holds_up_no_other_channel(
    mailbox: tuple[EmailConfig, list],
) -> None:
    email, mails = mailbox
    port = free_port()  # nothing listens there yet
    outcomes: list[tuple[str, str]] = []
    notifier = Notifier(
        [WebhookChannel(f"http://127.0.0.1:{port}/hook", timeout_s=2), EmailChannel(email)],
        on_delivery=lambda channel, outcome: outcomes.append((channel, outcome)),
    )
    notifier.update([SLOW])
    assert outcomes == [("webhook", "failed"), ("email", "sent")] and len(mails) == 1
    receiver = Webhook(port)
    try:
        notifier.update([SLOW])  # the webhook is tried again; e-mail was told already
        assert states(receiver.bodies) == [("p99_latency", "firing")] and len(mails) == 1
    finally:
        receiver.close()


def test_a_rule_still_firing_is_told_again_after_repeat_s(webhook: Webhook) -> None:
    now = [0.0]
    notifier = Notifier([WebhookChannel(webhook.url)], repeat_s=3600, clock=lambda: now[0])
    for at in (0.0, 60.0, 3599.0, 3600.0, 3700.0):
        now[0] = at
        notifier.update([SLOW])
    assert states(webhook.bodies) == [("p99_latency", "firing")] * 2


def test_the_service_tells_the_webhook_when_its_latency_rule_fires(
    store_url: str, models_dir: Path, webhook: Webhook
) -> None:
    alerts = AlertConfig(p99_latency_ms=0.001, min_requests=3, webhook_url=webhook.url, service_name="test")
    with TestClient(create_app(make_settings(store_url, models_dir, alerts=alerts))) as client:
        for _ in range(5):
            client.get("/v1/recommendations", params={"user_id": "u1", "k": 5})
        fired = client.app.state.service.alert_loop.check()
        metrics = client.get("/metrics").text
    assert [a.rule for a in fired] == ["p99_latency"]
    assert states(webhook.bodies) == [("p99_latency", "firing")]
    assert 'fusionrec_alert_notices_total{channel="webhook",outcome="sent"} 1.0' in metrics
