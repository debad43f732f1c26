"""Logs and error messages under a real uvicorn: ids from clients are printable and capped in the
log, a failure is one line without a traceback, and no answer names a server file path."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from fusionrec.serving.app import create_app
from headless import served
from serving.conftest import make_settings

EVIL = "\x1b[2J\x1b[31mfake log line\n" + "x" * 2000  # clears a terminal, forges a line, floods


def test_request_lines_in_the_access_log_are_capped(
    store_url: str, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with served(create_app(make_settings(store_url, models_dir)), log_level="info", log_config=None) as base:
        httpx.get(f"{base}/v1/similar/{quote(EVIL)}")
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert access, "no access log line"
    assert not any("\x1b" in line or "\n" in line for line in access)
    assert max(map(len, access)) < 600  # the 6,000-character request line is cut


def test_a_crash_and_a_bad_request_are_logged_in_one_line(
    store_url: str, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    caplog.set_level(logging.INFO)
    app = create_app(make_settings(store_url, models_dir))
    with served(app, log_level="info", log_config=None) as base:
        app.state.service.erase_user = explode
        crashed = httpx.delete(f"{base}/v1/users/{quote(EVIL[:200])}")  # a valid length
        address = urlsplit(base)
        with socket.create_connection((address.hostname, address.port), timeout=5) as raw:
            raw.sendall(b"NOT HTTP \x1b[2J\r\n\r\n")  # the server refuses it before the app
            raw.recv(1024)
    assert crashed.status_code == 500 and set(crashed.json()) == {"detail", "error_id"}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and crashed.json()["error_id"] in errors[0].getMessage()
    assert "\\x1b[2J" in errors[0].getMessage() and "RuntimeError" in errors[0].getMessage()
    assert "Traceback" not in caplog.text and "\x1b" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)
    assert any("Invalid HTTP request" in r.getMessage() for r in caplog.records)


def test_errors_sent_to_clients_name_no_server_path(client: TestClient, models_dir: Path) -> None:
    missing = client.post("/v1/models/v0099/activate")
    assert missing.status_code == 404 and "v0099" in missing.json()["detail"]
    assert str(models_dir.resolve()) not in missing.text and str(models_dir) not in missing.text
    (models_dir / "v0098").mkdir()  # a broken version: its error in the listing names no path
    try:
        listing = client.get("/v1/models")
    finally:
        (models_dir / "v0098").rmdir()
    assert listing.status_code == 200 and str(models_dir) not in listing.text
