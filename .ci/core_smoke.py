"""The core install, tried as a new user would: run by `.ci/check-core` inside a venv that has
`pip install .` and no extra.

1. No extra's package is importable here (else this check proves nothing).
2. Every module of the package imports; only the modules listed in EXTRA_ONLY may fail, and only
   with `MissingExtraError` naming their extra.
3. `fusionrec demo --no-serve --events 20000` trains; then `fusionrec demo` on a free port serves,
   answers `GET /v1/recommendations` and `POST /v1/events`, and stops on Ctrl-C (SIGINT).

Exits non-zero with a message on the first failure.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import fusionrec
from fusionrec.extras import EXTRA_OF_PACKAGE, MissingExtraError

# Modules that define torch classes at import time: they belong to the `deep` extra.
EXTRA_ONLY = {
    "fusionrec.models.sequential": "deep",
    "fusionrec.models.sequential_gru": "deep",
    "fusionrec.models.sequential_sasrec": "deep",
    "fusionrec.models.sequential_hybrid": "deep",
}
EVENTS = "20000"


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"core install check FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def check_no_extras_installed() -> None:
    present = [name for name in EXTRA_OF_PACKAGE if importlib.util.find_spec(name) is not None]
    check(not present, f"extra packages are installed in the core venv: {present}")


def check_every_module_imports() -> int:
    count = 0
    for info in pkgutil.walk_packages(fusionrec.__path__, "fusionrec."):
        if info.name.endswith(".__main__"):
            continue  # running it is the CLI itself, tried below
        count += 1
        try:
            importlib.import_module(info.name)
        except MissingExtraError as error:
            check(
                EXTRA_ONLY.get(info.name) == error.extra,
                f"core module {info.name} needs an extra: {error}",
            )
        except Exception as error:
            check(False, f"{info.name} does not import in the core install: {type(error).__name__}: {error}")
        else:
            check(info.name not in EXTRA_ONLY, f"{info.name} imports without its extra: update EXTRA_ONLY")
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(url: str, body: object | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if body else "GET")
    with urllib.request.urlopen(req, timeout=30) as answer:
        return answer.status, json.loads(answer.read())


def wait_ready(base: str, process: subprocess.Popen, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check(process.poll() is None, f"fusionrec demo exited with code {process.returncode} before serving")
        try:
            status, body = request(f"{base}/readyz")
            if status == 200 and body.get("ready"):
                return
        except OSError:
            pass
        time.sleep(1.0)
    check(False, f"fusionrec demo did not become ready within {timeout_s:.0f} s")


def check_demo(workdir: Path) -> None:
    cli = str(Path(sys.executable).with_name("fusionrec"))
    trained = subprocess.run(
        [
            cli,
            "demo",
            "--no-serve",
            "--events",
            EVENTS,
            "--dir",
            str(workdir),
            "--json",
            str(workdir / "d.json"),
        ],
        check=False,
    )
    check(trained.returncode == 0, f"fusionrec demo --no-serve exited with {trained.returncode}")
    metrics = json.loads((workdir / "d.json").read_text())["train"]["evaluation"]["metrics"]
    check(0 < metrics.get("NDCG@20", 0) <= 1, f"demo metrics look wrong: {metrics}")
    check((workdir / "shop.duckdb").is_file() and (workdir / "models").is_dir(), "demo --dir layout changed")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([cli, "demo", "--events", EVENTS, "--dir", str(workdir), "--port", str(port)])
    try:
        wait_ready(base, server)
        status, answer = request(f"{base}/v1/recommendations?user_id=u0&k=5")
        check(status == 200 and len(answer.get("items", [])) == 5, f"recommendations: {status} {answer}")
        event = {
            "user_id": "u0",
            "item_id": answer["items"][0]["item_id"],
            "event_type": "view",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
        }
        status, accepted = request(f"{base}/v1/events", {"events": [event]})
        check(status == 202 and accepted.get("stored") == 1, f"events: {status} {accepted}")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            code = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            check(False, "fusionrec demo did not stop within 60 s of SIGINT")
    check(code == 0, f"fusionrec demo exited with {code} after SIGINT")
    print(f"core install: demo served {base}: recommendations and events answered, stopped cleanly")


def main() -> None:
    check_no_extras_installed()
    modules = check_every_module_imports()
    print(f"core install: {modules} modules import, {len(EXTRA_ONLY)} need their extra as declared")
    with tempfile.TemporaryDirectory(prefix="fusionrec-core-") as folder:
        os.chdir(folder)  # no fusionrec.toml of the checkout may leak in
        check_demo(Path(folder) / "demo")


if __name__ == "__main__":
    main()
