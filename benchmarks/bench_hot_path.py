"""In-process micro-benchmark of the serving hot paths: server CPU per request, no HTTP, no client.

Protocol: a synthetic shop (``--events``) is ingested into a DuckDB file and a fused version
(``--model``, default ``fusion``) is trained into a model repository, both kept in ``--workdir``
and reused by later runs (so a before/after comparison scores the same model). The `Service` starts
in this process with pre-scoring on and the default caches; once the known users' lists are
ready, each scenario calls the request function directly ``--calls`` times, round-robin over users
or items, and reports the median and 95th percentile of the thread CPU time and wall time per call:

* known: `recommend` for known users with pre-scored lists and no live events (each asked once)
* live: an event of the visitor (`Service.ingest`), then `recommend` (the recommendation timed)
* guest: an event of a new session, then `recommend` for that session (the recommendation timed;
  the one-item guests' lists pre-scored, where the service makes them, before the scenarios)
* popular: `popular` (the shared cache on: what a repeated request costs)
* similar: `related(..., "similar")` (cycling over the first 2,000 items), and its cached answer
* explained: `recommend` with ``explain=true`` for the known users (a reason per item; not a hot path)

``--http`` runs the same scenarios through a real server instead (`run_http`), with ``/healthz``
as the floor of a request through the same middleware.

Writes a JSON line per run to standard output (and ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def prepare(workdir: Path, n_events: int, model: str, guardrail: bool = False) -> tuple[str, Path]:
    """The store and a trained version in ``workdir`` (made once, reused afterwards)."""
    store_url = f"duckdb:///{workdir / 'shop.duckdb'}"
    models = workdir / "models"
    if (models / "v0001").is_dir():
        return store_url, models
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.ingest import ingest_frame
    from fusionrec.data.store import open_store
    from fusionrec.data.synthetic import generate_frames
    from fusionrec.fusion.artifacts import ModelRepository
    from fusionrec.training import TrainingSpec, train_version

    workdir.mkdir(parents=True, exist_ok=True)
    events, items, _ = generate_frames(n_events=n_events, seed=7)
    with open_store(store_url) as store:
        ingest_frame(store, events)
        store.upsert_items(items)
    started = time.perf_counter()
    dataset = Dataset.from_frame(events, items)
    # Without the guardrail the pipeline ships as given, so the fused path is what gets measured
    # (with it, a source that beats the fusion on the validation days would ship instead).
    repo = ModelRepository(models)
    train_version(dataset, repo, TrainingSpec(model), trained_by="bench", guardrail=guardrail)
    print(f"{model} trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return store_url, models


def timed(
    fn: Callable[[int], Any], calls: int, before: Callable[[int], Any] | None = None
) -> dict[str, float]:
    """Median and p95 of thread CPU and wall milliseconds of ``fn(i)`` (``before(i)`` untimed)."""
    cpu, wall = [], []
    for i in range(calls):
        if before is not None:
            before(i)
        c, w = time.thread_time(), time.perf_counter()
        fn(i)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    cpu_ms, wall_ms = np.array(cpu) * 1000, np.array(wall) * 1000
    return {
        "cpu_p50_ms": round(float(np.median(cpu_ms)), 3),
        "cpu_p95_ms": round(float(np.percentile(cpu_ms, 95)), 3),
        "wall_p50_ms": round(float(np.median(wall_ms)), 3),
        "wall_p95_ms": round(float(np.percentile(wall_ms, 95)), 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fusionrec.serving import recommend as module
    from fusionrec.serving.recommend import RecQuery, popular, recommend, related

    cached_related = getattr(module, "cached_related", None)  # absent before the answer cache
    from fusionrec.serving.service import Service
    from fusionrec.serving.settings import load_settings

    store_url, models = prepare(Path(args.workdir), args.events, args.model, args.guardrail)
    settings = load_settings(None, store_url=store_url, models_dir=models, dev=True)
    svc = Service(settings)
    started = time.perf_counter()
    svc.start()
    ready = time.perf_counter() - started
    loaded = svc.registry.active
    assert loaded is not None, "no active version"
    while "precomputed" not in loaded.extras:
        time.sleep(0.2)
    precomputed = time.perf_counter() - started
    while "precomputing_guests" in loaded.extras:  # the one-item guests' lists, where made
        time.sleep(0.2)
    guests_precomputed = time.perf_counter() - started
    users = [u for u in loaded.user_index if loaded.extras["precomputed"].get(loaded.user_index[u])][:2000]
    items = [str(i) for i in loaded.item_ids[:2000]]
    rng = np.random.default_rng(0)
    n = args.calls
    out: dict[str, Any] = {
        "events": args.events,
        "model": loaded.manifest.pipeline["model"],  # what shipped (the guardrail may swap it)
        "users": len(loaded.user_index),
        "items": len(loaded.item_ids),
        "start_to_active_s": round(ready, 1),
        "start_to_precomputed_s": round(precomputed, 1),
        "start_to_guests_precomputed_s": round(guests_precomputed, 1),
        "load": os.getloadavg()[0],
    }
    for i in range(20):  # warm-up
        recommend(svc, RecQuery(user_id=users[i]))
    out["known"] = timed(lambda i: recommend(svc, RecQuery(user_id=users[i % len(users)])), n)
    picks = rng.integers(len(items), size=n)

    def event(visitor: dict[str, str], i: int) -> None:
        # No timestamp: the service stamps the event with its own clock, as for a live event.
        svc.ingest([{**visitor, "item_id": items[picks[i]], "event_type": "view"}])

    live_users = users[-n:]
    out["live"] = timed(
        lambda i: recommend(svc, RecQuery(user_id=live_users[i % len(live_users)])),
        n,
        before=lambda i: event({"user_id": live_users[i % len(live_users)]}, i),
    )
    out["guest"] = timed(
        lambda i: recommend(svc, RecQuery(session_id=f"bench-guest-{i}")),
        n,
        before=lambda i: event({"session_id": f"bench-guest-{i}"}, i),
    )
    out["popular"] = timed(lambda i: popular(svc, None, 10), n)
    out["similar"] = timed(lambda i: related(svc, items[i % len(items)], 10, "similar"), n)
    if cached_related is not None:  # as the route answers: the cached answer when there is one
        out["similar_cached"] = timed(lambda i: cached_related(svc, items[i % len(items)], 10, "similar"), n)
    if "explain" in RecQuery.__dataclass_fields__:  # absent before explanations
        # Known users with explain=true: the pre-scored list, then one trace for its 10 items.
        out["explained"] = timed(
            lambda i: recommend(svc, RecQuery(user_id=users[i % len(users)], explain=True)), n
        )
    svc.close()
    return out


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_http(args: argparse.Namespace) -> dict[str, Any]:
    """The same scenarios through a real server (uvicorn, one worker): server CPU per request.

    Requests are sequential over one keep-alive connection, so the server's CPU over a scenario
    divided by its requests is its cost per request; ``/healthz`` (a constant answer through the
    same middleware) is the floor.
    """
    import subprocess

    import httpx

    store_url, models = prepare(Path(args.workdir), args.events, args.model, args.guardrail)
    frame_users, items = _ids(store_url, models)  # before the server holds the DuckDB file
    env = {
        **os.environ,
        "FUSIONREC_SERVING_STORE_URL": store_url,
        "FUSIONREC_SERVING_MODELS_DIR": str(models),
        "FUSIONREC_SERVING_DEV": "true",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "fusionrec.serving.app:app_from_env"]
    command += ["--port", str(args.port), "--no-access-log", "--log-level", "warning"]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{args.port}"
    out: dict[str, Any] = {"events": args.events, "model": args.model, "mode": "http"}
    out["shipped"] = json.loads((models / "v0001" / "manifest.json").read_text())["pipeline"]["model"]
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        out["start_to_ready_s"] = round(time.perf_counter() - started, 1)
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            while not client.get("/readyz").json().get("precomputed"):
                time.sleep(0.2)
            out["start_to_precomputed_s"] = round(time.perf_counter() - started, 1)
            client.get("/v1/popular", params={"k": 1})  # warm-up
            n = args.calls

            def scenario(request: Callable[[int], Any], before: Callable[[int], Any] | None = None) -> float:
                cpu = 0.0
                for i in range(n):
                    if before is not None:
                        before(i)
                    c = server_cpu(process.pid)
                    request(i).raise_for_status()
                    cpu += server_cpu(process.pid) - c
                return round(cpu / n * 1000, 3)

            def event(body: dict[str, str], i: int) -> None:
                body = {**body, "item_id": items[i % len(items)], "event_type": "view"}
                client.post("/v1/events", json=body).raise_for_status()

            rec = "/v1/recommendations"
            out["floor_healthz_ms"] = scenario(lambda i: client.get("/healthz"))
            out["known_ms"] = scenario(lambda i: client.get(rec, params={"user_id": frame_users[i]}))
            out["popular_ms"] = scenario(lambda i: client.get("/v1/popular", params={"k": 10}))
            out["similar_ms"] = scenario(lambda i: client.get(f"/v1/items/{items[i % len(items)]}/similar"))
            live = frame_users[-n:]
            out["live_ms"] = scenario(
                lambda i: client.get(rec, params={"user_id": live[i]}),
                lambda i: event({"user_id": live[i]}, i),
            )
            out["guest_ms"] = scenario(
                lambda i: client.get(rec, params={"session_id": f"g-{i}"}),
                lambda i: event({"session_id": f"g-{i}"}, i),
            )
    finally:
        process.terminate()
        process.wait(30)
    out["load"] = os.getloadavg()[0]
    return out


def _ids(store_url: str, models: Path) -> tuple[list[str], list[str]]:
    """The trained version's first users (known to the model) and the catalogue's first item ids."""
    from fusionrec.data.store import open_store
    from fusionrec.fusion.artifacts import ModelRepository

    with open_store(store_url, create=False) as store:
        items = [str(i) for i in store.items_arrow().column("item_id").to_pylist()]
    model = ModelRepository(models).load("v0001")
    return [str(u) for u in model.user_ids_[:5000]], items[:2000]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--model", default="fusion")
    parser.add_argument("--workdir", default="/tmp/fusionrec-hot-path")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--http", action="store_true", help="through a real server: server CPU per request")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument(
        "--guardrail", action="store_true", help="train with the guardrail (may ship a single source)"
    )
    args = parser.parse_args()
    result = run_http(args) if args.http else run(args)
    line = json.dumps(result)
    print(line)
    if args.out is not None:
        with args.out.open("a") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()
