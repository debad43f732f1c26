"""The README's commands run as written (issue 25): every line of its "Commands" block, in order, in
a fresh folder, with only the sizes made small (`SMALLER`, each with its reason) and the long-running
ones (`serve`, `consume`) started, asked once and stopped."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
FUSIONREC = str(Path(sys.executable).parent / "fusionrec")
DATA = Path(os.environ.get("FUSIONREC_DATA", ROOT.parent / "shared" / "data")).resolve()

# (pattern, replacement, why): the only changes made to a README command.
SMALLER = [
    (r"--events 1000000", "--events 20000", "a 20k-event shop instead of 1M"),
    (r"--dataset amazon-beauty", "--dataset movielens-100k", "100k ratings instead of 198k reviews"),
    (r"--models sasrec --refit", "--models sasrec --refit --set sasrec.epochs=2", "two epochs"),
    (r"(train .*?)--budget 30m", r"\1--budget 20s", "a 20 s search"),
    (r"(fusionrec train (?!.*--budget).*)$", r"\1 --budget 20s", "a 20 s search"),
    (r"(--models .*auto)$", r"\1 --budget 20s", "a 20 s search"),
    (r"--trials 10", "--trials 2", "two trials"),
    (r"^fusionrec consume (.*)$", r"fusionrec consume \1 --drain", "stop once the stream is read"),
]
SERVERS = ("fusionrec serve ",)


def readme_commands() -> list[str]:
    """The lines of the README's ```bash block under "## Commands", comments dropped."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Commands\n+```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no ```bash block under ## Commands"
    lines = [re.split(r"\s{2,}#", line)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line.startswith("fusionrec ")]


def made_small(command: str) -> str:
    command = command.replace("../shared/data", str(DATA))
    for pattern, replacement, _ in SMALLER:
        command = re.sub(pattern, replacement, command)
    return command


def write_a_shops_own_files(folder: Path) -> None:
    """The `orders.csv` and `catalogue.csv` the import example names: semicolons, decimal commas,
    German dates, and a catalogue keyed by SKU."""
    rows = ["user_id;item_id;event_type;timestamp;price"]
    rows += [
        f"k{n % 7};s{n % 5};{'view' if n % 3 else 'purchase'};01.10.2026 1{n % 10}:19;12,50"
        for n in range(40)
    ]
    (folder / "orders.csv").write_text("\n".join(rows) + "\n")
    items = ["sku;title;category;price"] + [f"s{n};Artikel {n};Kategorie {n % 2};12,50" for n in range(5)]
    (folder / "catalogue.csv").write_text("\n".join(items) + "\n")


def serve_once(argv: list[str], cwd: Path) -> None:
    """Start the server, wait until it is ready, ask it for recommendations, stop it (Ctrl-C)."""
    port = free_port()
    server = subprocess.Popen([*argv, "--port", str(port)], cwd=cwd, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(server, base, 180, " ".join(argv))
        answer = httpx.get(f"{base}/v1/recommendations", params={"user_id": "u0", "k": 5}, timeout=30)
        assert answer.status_code == 200 and len(answer.json()["items"]) == 5, answer.text
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(1800)  # some twenty commands, three searches, Spark: 6-12 min on 2 shared cores
def test_every_readme_command_runs_as_written(tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    commands = readme_commands()
    assert len(commands) >= 15 and any(c.startswith("fusionrec serve") for c in commands)
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    write_a_shops_own_files(tmp_path)
    env = {**os.environ, "FUSIONREC_DATA": str(DATA), "NO_COLOR": "1"}
    for command in commands:
        small = made_small(command)
        argv = shlex.split(small)
        redirect = argv.index(">") if ">" in argv else None
        target = tmp_path / argv[redirect + 1] if redirect is not None else None
        argv = [FUSIONREC, *argv[1 : redirect if redirect is not None else None]]
        if small.startswith(SERVERS):
            serve_once(argv, tmp_path)
            continue
        run = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, f"{small}\n{run.stderr[-3000:]}"
        if target is not None:
            target.write_text(run.stdout)
    assert (tmp_path / "models" / "v0001" / "pipeline.toml").is_file()
    assert (tmp_path / "best.toml").is_file() and (tmp_path / "report.html").is_file()


TUTORIAL_SMALLER = [
    (r"--events 100000", "--events 20000", "a 20k-event shop"),
    (r"--budget 3m", "--budget 20s", "a 20 s search"),
]
TUTORIAL_KEYS = {"publishable": "pk_tutorial_publishable_0001", "admin": "sk_tutorial_admin_0001"}


def tutorial_blocks(kind: str) -> list[str]:
    text = (ROOT / "docs" / "tutorial.md").read_text()
    return re.findall(rf"```{kind}\n(.*?)```", text, re.S)


@pytest.mark.timeout(1200)
def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    """docs/tutorial.md: its shell blocks in order (the serve step started, used as the page does,
    and stopped), then its page's calls against the running service."""
    env = {**os.environ, "NO_COLOR": "1", "PATH": f"{Path(FUSIONREC).parent}:{os.environ['PATH']}"}
    blocks = tutorial_blocks("bash")
    assert len(blocks) >= 4
    page = tutorial_blocks("html")[0]
    for block in blocks:
        script = block
        for pattern, replacement, _ in TUTORIAL_SMALLER:
            script = re.sub(pattern, replacement, script)
        if script.strip().startswith("fusionrec serve "):
            port = free_port()
            argv = [FUSIONREC, *shlex.split(script.strip())[1:], "--port", str(port)]
            with_page_against(argv, tmp_path, env, page.replace("127.0.0.1:8000", f"127.0.0.1:{port}"), port)
            continue
        run = subprocess.run(
            ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, f"{script}\n{run.stderr[-3000:]}"
    assert (tmp_path / "models" / "v0001" / "pipeline.toml").is_file()


def with_page_against(argv: list[str], cwd: Path, env: dict, page: str, port: int) -> None:
    """What the tutorial's page and its reader do with the running service: load the widget, read
    a strip with catalogue fields, send a click with the publishable key from the page's origin,
    open the dashboard with the admin key in the address."""
    server = subprocess.Popen(argv, cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    origin = {"Origin": "http://127.0.0.1:8080"}
    try:
        wait_until_ready(server, base, 180, "the tutorial's service")
        assert f"{base}/sdk/fusionrec.js" in page and TUTORIAL_KEYS["publishable"] in page
        assert httpx.get(f"{base}/sdk/fusionrec.js", timeout=30).status_code == 200
        strip = httpx.get(
            f"{base}/v1/recommendations",
            params={"user_id": "u0", "k": 6, "placement": "home", "fields": "title,price"},
            headers=origin,
            timeout=30,
        ).json()
        assert len(strip["items"]) == 6 and all(item["title"] for item in strip["items"]), strip
        click = {"event_type": "click", "item_id": strip["items"][0]["item_id"], "user_id": "u0"}
        sent = httpx.post(
            f"{base}/v1/exposures/{strip['exposure_id']}/events",
            json=click,
            headers={**origin, "X-API-Key": TUTORIAL_KEYS["publishable"]},
            timeout=30,
        )
        assert sent.status_code == 202, sent.text
        anonymous = httpx.post(f"{base}/v1/events", json={**click, "timestamp": "2026-01-01T00:00:00Z"})
        assert anonymous.status_code == 401  # a fresh service with keys: no anonymous writes
        with httpx.Client(base_url=base, follow_redirects=True, timeout=60) as browser:
            browser.headers["Accept"] = "text/html"
            assert browser.get("/dashboard/").status_code == 401  # the sign-in form
            dashboard = browser.post("/dashboard/login", data={"key": TUTORIAL_KEYS["admin"]})
            assert dashboard.status_code == 200 and str(dashboard.url).endswith("/dashboard/")
            assert browser.get("/dashboard/").status_code == 200  # the cookie carries the key
        assert httpx.get(f"{base}/dashboard/", timeout=30).status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
