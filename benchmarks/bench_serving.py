"""Load test of `fusionrec serve`: latency percentiles and throughput, client on the same machine.

Protocol: a synthetic shop (``--events``) is ingested into a DuckDB file; two versions are trained
into a model repository (v0001 = EASE, v0002 = the default fused pipeline); the service runs in
its own uvicorn process (one worker). An open-loop asyncio client (httpx, keep-alive pool) sends
requests at a fixed rate (``--rate``) for ``--seconds``, each scenario ``--runs`` times; latency is
measured per request from send to full response. Scenarios:

* fused: GET /v1/recommendations for random known users (cache misses: each user asked once per run)
* cached: the same 50 users over and over (cache hits)
* popular: GET /v1/popular
* ingest: POST /v1/events batches of ``--batch`` events, sequentially: events per second
* activation: fused load while v0001 and v0002 are activated in turn every second: failed requests

Writes benchmarks/results/serving.json (medians over runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "serving.json"


def prepare(workdir: Path, n_events: int, fused: bool) -> tuple[str, Path, list[str], list[str]]:
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.ingest import ingest_frame
    from fusionrec.data.store import open_store
    from fusionrec.data.synthetic import generate_frames
    from fusionrec.fusion.artifacts import ModelRepository
    from fusionrec.training import TrainingSpec, train_version

    events, items, _ = generate_frames(n_events=n_events, seed=7)
    store_url = f"duckdb:///{workdir / 'shop.duckdb'}"
    with open_store(store_url) as store:
        ingest_frame(store, events)
        store.upsert_items(items)
    dataset = Dataset.from_frame(events, items)
    repo = ModelRepository(workdir / "models")
    started = time.perf_counter()
    train_version(dataset, repo, TrainingSpec("ease"), trained_by="bench_serving", valid_days=0)
    print(f"ease trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if fused:
        started = time.perf_counter()
        train_version(dataset, repo, TrainingSpec("fusion"), trained_by="bench_serving", valid_days=0)
        print(f"fusion trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    users = sorted(set(events.column("user_id").drop_null().to_pylist()))
    return store_url, workdir / "models", users, items.column("item_id").to_pylist()


def start_server(store_url: str, models: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "FUSIONREC_SERVING_STORE_URL": store_url,
        "FUSIONREC_SERVING_MODELS_DIR": str(models),
        "FUSIONREC_SERVING_MAX_BODY_BYTES": str(64 * 1024 * 1024),
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "fusionrec.serving.app:app_from_env",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            if ready.status_code == 200 and ready.json().get("precomputed"):  # batch scoring finished
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("the service did not become ready")


async def server_histogram(client: httpx.AsyncClient, endpoint: str) -> dict[float, float]:
    """Cumulative bucket counts of the server's own latency histogram for ``endpoint`` (GET)."""
    text = (await client.get("/metrics")).text
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        mine = f'endpoint="{endpoint}"' in line and 'method="GET"' in line
        if line.startswith("fusionrec_request_seconds_bucket{") and mine:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The bucket upper bound (ms) holding quantile ``q`` of the requests between two scrapes."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    target = q * counts[-1]
    for bound, count in zip(bounds, counts, strict=True):
        if count >= target:
            return round(bound * 1000, 2)
    return None


async def open_loop(
    client: httpx.AsyncClient, paths: list[str], rate: float, seconds: float, side: Any = None
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    degraded = 0

    async def one(path: str) -> None:
        nonlocal errors, degraded
        started = time.perf_counter()
        try:
            response = await client.get(path)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1
            elif response.json().get("degraded"):
                degraded += 1
        except httpx.HTTPError:
            errors += 1

    n = int(rate * seconds)
    tasks = []
    endpoint = paths[0].split("?", 1)[0]
    before = await server_histogram(client, endpoint)
    client_cpu = time.process_time()
    begin = time.perf_counter()
    side_task = asyncio.create_task(side()) if side is not None else None
    for i in range(n):
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(paths[i % len(paths)])))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - begin
    client_cpu = time.process_time() - client_cpu
    after = await server_histogram(client, endpoint)
    side_result = await side_task if side_task is not None else None
    ms = np.array(latencies) * 1000
    return {
        "requests": n,
        "errors": errors,
        "degraded": degraded,
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "side": side_result,
        # Where the time goes: the server's own histogram (bucket bounds) and the client's CPU share.
        "server_p50_ms_bucket": histogram_quantile(before, after, 0.50),
        "server_p99_ms_bucket": histogram_quantile(before, after, 0.99),
        "client_cpu_share": round(client_cpu / elapsed, 2),
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms")
    out: dict[str, Any] = {k: float(np.median([r[k] for r in runs])) for k in keys}
    out["errors"] = int(sum(r["errors"] for r in runs))
    out["requests"] = int(sum(r["requests"] for r in runs))
    out["degraded"] = int(sum(r["degraded"] for r in runs))
    out["runs"] = runs
    return out


async def ingest(client: httpx.AsyncClient, items: list[str], batch: int, batches: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    bodies = []
    for b in range(batches):
        chosen = rng.choice(len(items), batch)
        events = [
            {
                "event_id": f"bench-{seed}-{b}-{i}",
                "user_id": f"load-{int(rng.integers(5000))}",
                "item_id": items[j],
                "event_type": "view",
                "timestamp": "2026-04-01T10:00:00Z",
            }
            for i, j in enumerate(chosen.tolist())
        ]
        bodies.append(json.dumps({"events": events}).encode())
    started = time.perf_counter()
    stored = 0
    for body in bodies:
        response = await client.post("/v1/events", content=body, headers={"content-type": "application/json"})
        response.raise_for_status()
        stored += response.json()["stored"]
    elapsed = time.perf_counter() - started
    assert stored == batch * batches, stored
    return stored / elapsed


async def scenarios(
    port: int, users: list[str], items: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10) as client:
        for user in users[:50]:  # warm-up: code paths, not the users measured below
            await client.get("/v1/recommendations", params={"user_id": user, "k": 10})
        results: dict[str, Any] = {}
        fused_runs, cached_runs, popular_runs, activation_runs = [], [], [], []
        for _run in range(args.runs):
            order = rng.permutation(len(users))
            paths = [f"/v1/recommendations?user_id={users[i]}&k=10" for i in order]
            fused_runs.append(await open_loop(client, paths, args.rate, args.seconds))
            hot = [f"/v1/recommendations?user_id={users[i]}&k=10" for i in order[:50]]
            for path in hot:
                await client.get(path)
            cached_runs.append(await open_loop(client, hot, args.rate, args.seconds))
            popular_runs.append(await open_loop(client, ["/v1/popular?k=10"], args.rate, args.seconds))

            async def swap() -> dict[str, Any]:
                swaps, failed = 0, 0
                for i in range(int(args.seconds)):
                    await asyncio.sleep(1.0)
                    version = "v0001" if i % 2 == 0 else "v0002"
                    response = await client.post(f"/v1/models/{version}/activate", params={"force": True})
                    swaps += 1
                    failed += response.status_code != 200
                await client.post("/v1/models/v0002/activate", params={"force": True})
                return {"swaps": swaps, "failed_swaps": failed}

            paths = [f"/v1/recommendations?user_id={users[i]}&k=10" for i in rng.permutation(len(users))]
            activation_runs.append(await open_loop(client, paths, args.rate, args.seconds, side=swap))
        results["fused"] = median_of(fused_runs)
        results["cached"] = median_of(cached_runs)
        results["popular"] = median_of(popular_runs)
        results["activation_under_load"] = median_of(activation_runs)
        rates = [await ingest(client, items, args.batch, args.batches, seed) for seed in range(args.runs)]
        results["ingest"] = {
            "events_per_second": round(float(np.median(rates))),
            "runs": [round(r) for r in rates],
            "batch": args.batch,
            "batches": args.batches,
        }
    return results


def _timed(fn: Any, calls: list[Any]) -> dict[str, float]:
    wall, cpu = [], []
    for args in calls:
        w, c = time.perf_counter(), time.process_time()
        fn(*args)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    wall_ms, cpu_ms = np.array(wall) * 1000, np.array(cpu) * 1000
    return {
        "calls": len(calls),
        "p50_ms": round(float(np.percentile(wall_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(wall_ms, 99)), 3),
        "cpu_ms_mean": round(float(cpu_ms.mean()), 3),
    }


def service_times(store_url: str, models: Path, users: list[str], items: list[str], n: int) -> dict[str, Any]:
    """Per-request cost inside the service (no HTTP): wall percentiles and CPU per call."""
    from fusionrec.serving.recommend import RecQuery, popular, recommend
    from fusionrec.serving.service import Service
    from fusionrec.serving.settings import load_settings

    svc = Service(
        load_settings(None, store_url=store_url, models_dir=models, cache_ttl_s=0, log_exposures=False)
    )
    svc.start()
    out: dict[str, Any] = {}
    try:
        for _ in range(600):
            if "precomputed" in svc.registry.active.extras:
                break
            time.sleep(0.5)
        sample = users[:n]
        query = [(svc, RecQuery(user_id=u, k=10)) for u in sample]
        out[f"{svc.registry.active.version}_precomputed"] = _timed(recommend, query)
        svc.ingest(
            [
                {
                    "user_id": u,
                    "item_id": items[i % len(items)],
                    "event_type": "view",
                    "timestamp": "2026-04-01T10:00:00Z",
                }
                for i, u in enumerate(sample)
            ]
        )
        out[f"{svc.registry.active.version}_live_history"] = _timed(recommend, query)
        out["popular"] = _timed(popular, [(svc, None, 10)] * n)
        svc.cache = type(svc.cache)(ttl_s=60.0)  # cached answers: the same users again
        _timed(recommend, query)
        out["cached"] = _timed(recommend, query)
        rng = np.random.default_rng(1)
        batches = [
            [
                {
                    "event_id": f"inproc-{b}-{i}",
                    "user_id": f"load-{int(rng.integers(5000))}",
                    "item_id": items[int(rng.integers(len(items)))],
                    "event_type": "view",
                    "timestamp": "2026-04-01T10:00:00Z",
                }
                for i in range(5000)
            ]
            for b in range(4)
        ]
        started = time.perf_counter()
        for batch in batches:
            svc.ingest(batch)
        out["ingest_events_per_second"] = round(20_000 / (time.perf_counter() - started))
    finally:
        svc.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--no-fusion", action="store_true", help="serve EASE only (v0002 not trained)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--inprocess", type=int, default=300, help="users timed inside the service (no HTTP)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    store_url, models, users, items = prepare(workdir, args.events, not args.no_fusion)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = start_server(store_url, models, port)
    try:
        results = asyncio.run(scenarios(port, users, items, args))
    finally:
        server.terminate()
        server.wait(timeout=30)
    results["in_process"] = service_times(store_url, models, users, items, args.inprocess)
    load = os.getloadavg()
    out = {
        "benchmark": "serving",
        "protocol": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "model_versions": {
            "v0001": "ease",
            "v0002": "ease" if args.no_fusion else "fusion (default pipeline)",
        },
        "users": len(users),
        "items": len(items),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_after": load},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    summary = {
        k: {m: v.get(m) for m in ("p50_ms", "p99_ms", "errors", "events_per_second") if m in v}
        for k, v in results.items()
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
