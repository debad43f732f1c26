"""Servers, saturation (wrk) and process accounting for `bench_serving.py`.

Linux only: CPU time and resident memory are read from ``/proc``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "serving_wrk.lua"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers are children of its supervisor)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError):
                continue  # gone meanwhile
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (those still alive)."""
    total = 0
    for pid in pids:
        try:
            fields = _stat(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of ``pids`` together."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return total


def find_process(name: str) -> int | None:
    """The first process whose command name is ``name`` (e.g. the Redis server), or None."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
            except OSError:
                continue
    return None


@dataclass
class Server:
    """A uvicorn process tree listening on ``port``; its start-up is timed from the spawn."""

    name: str
    port: int
    process: subprocess.Popen
    started: float
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def spawn(name: str, app: list[str], env: dict[str, str], workers: int, port: int | None = None) -> Server:
    """Start ``uvicorn [app]`` with the benchmark's worker settings (the same for every server)."""
    port = port or free_port()
    command = [sys.executable, "-m", "uvicorn", *app, "--port", str(port)]
    command += ["--no-access-log", "--log-level", "warning"]
    if workers > 1:
        command += ["--workers", str(workers)]
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, **env})
    return Server(name, port, process, started)


def wait_ready(server: Server, precomputed: bool, timeout_s: float = 1800, streak: int = 1) -> float:
    """Seconds from spawn until /readyz answers 200 (and ``precomputed`` when asked).

    With several workers each poll opens a new connection, so the kernel may hand it to any of
    them; ``streak`` consecutive good answers stand for "all workers".
    """
    deadline = time.perf_counter() + timeout_s
    good = 0
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with status {server.process.returncode}")
        try:
            answer = httpx.get(f"{server.url}/readyz", timeout=5)
            ok = answer.status_code == 200 and (not precomputed or answer.json().get("precomputed"))
        except httpx.HTTPError:
            ok = False
        good = good + 1 if ok else 0
        if good >= streak:
            return time.perf_counter() - server.started
        time.sleep(0.05 if ok else 0.25)
    raise RuntimeError(f"{server.name} was not ready after {timeout_s:.0f} s")


@dataclass(frozen=True)
class WrkSettings:
    """The fixed wrk command of every saturation run: threads, connections, seconds."""

    threads: int = 1
    connections: int = 16
    seconds: float = 10.0
    timeout_s: float = 5.0

    def command(self, url: str, lines: Path, tag: str) -> list[str]:
        wrk = shutil.which("wrk")
        if wrk is None:
            raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
        return [
            wrk,
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{self.seconds:g}s",
            f"--timeout={self.timeout_s:g}s",
            "-s",
            str(WRK_SCRIPT),
            url,
            "--",
            str(lines),
            tag,
        ]


def saturate(
    server: Server, lines: Path, tag: str, settings: WrkSettings, redis_pid: int | None = None
) -> dict:
    """One wrk run against ``server``: requests per second, errors, server and client CPU."""
    pids = server.pids()
    before = cpu_seconds(pids)
    redis_before = cpu_seconds([redis_pid]) if redis_pid else 0.0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        settings.command(server.url, lines, tag), capture_output=True, text=True, check=False
    )
    client = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = cpu_seconds(pids) - before
    marker = [line for line in done.stdout.splitlines() if line.startswith("WRKJSON ")]
    if done.returncode != 0 or not marker:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")
    raw = json.loads(marker[0].split(" ", 1)[1])
    seconds = raw["duration_us"] / 1e6
    requests = raw["requests"]
    errors = sum(
        raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    client_cpu = (client.ru_utime - children.ru_utime) + (client.ru_stime - children.ru_stime)
    out = {
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1),
        "errors": errors,
        "degraded": raw["degraded"],  # answers flagged degraded (a fallback instead of the model)
        "server_cpu_ms_per_request": round(server_cpu / max(requests, 1) * 1000, 3),
        "server_cpu_share": round(server_cpu / seconds, 2),  # cores the server used
        "client_cpu_share": round(client_cpu / seconds, 2),  # cores wrk used
        "wrk_p50_ms": round(raw["p50_us"] / 1000, 2),
        "wrk_p99_ms": round(raw["p99_us"] / 1000, 2),
    }
    if redis_pid:
        out["redis_cpu_ms_per_request"] = round(
            (cpu_seconds([redis_pid]) - redis_before) / max(requests, 1) * 1000, 3
        )
    return out


def write_lines(path: Path, lines: list[str]) -> Path:
    """The rotation file of a wrk run (no tab or newline may be inside a field)."""
    path.write_text("\n".join(lines) + "\n")
    return path
