"""Load test of `fusionrec serve` against a static floor, client on the same machine.

The shop: a synthetic shop of ``--events`` ingested into a DuckDB file with two versions trained
(v0001 = EASE, v0002 = the default fused pipeline), or, with ``--workdir`` holding a store and a
trained repository (what ``bench_hot_path.py --workdir`` leaves), that store and version reused.
The store is copied first, so the benchmark's live events never reach the original.

Parts (``--parts``; results are merged into ``--out``, so parts can run one at a time):

* single: the service in one uvicorn worker. Start-up: seconds from spawning the process to
  ``/readyz`` 200 (answers may then be flagged "precomputing"), and to pre-scoring finished;
  resident memory. Then ``--runs`` runs; in each, every scenario is driven to saturation by the
  same wrk command (``--wrk-*``) against the **static floor** (``serving_floor.py``: a bare
  FastAPI app under the same uvicorn settings answering the bodies fusionrec gave, captured
  first, so the same sizes) and then against the service, with the server processes' CPU per
  request read from /proc; then the open-loop client (`serving_client`: asyncio, 64 keep-alive
  connections, latency from the moment a request was due) at fixed rates: known users at
  ``--known-rate`` requests/s, live visitors at ``--pair-rate`` pairs/s (an event, then the
  recommendations: the latency of that recommendation request is reported), each against the
  floor and the service. Scenarios (`SCENARIOS`): known users (pre-scored), live visitor
  (an event pipelined before the recommendation request on one connection), guest (a new session
  with one event, then its recommendations), page (a new session's recommendations on a product
  page, the item as ``context``, before any event: every page once), page_by_traffic (the same,
  pages drawn as the shop's events fall on items, so popular pages come back), popular, similar
  items, and the live visitor's event alone (where the pair's cost goes).
* redis: the same with ``--workers`` uvicorn workers sharing Redis (127.0.0.1:6379) for the
  online state and a PostgreSQL copy of the store (a DuckDB file has one writer), for the
  scenarios of ``--redis-scenarios``.
* memory: the service loaded in this process; what its arrays hold per user, per item and in
  item × item matrices (`serving_memory.inventory`), against the growth of resident memory.
* classic: the earlier protocol (open loop at ``--rate``: fused, cached, popular, activation
  under load; batched ingestion; calls inside the service without HTTP).

Medians over the runs, each run in the JSON (``--out``, default benchmarks/results/serving.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from serving_client import Connection
from serving_load import (
    Server,
    WrkSettings,
    cpu_seconds,
    find_process,
    rss_bytes,
    saturate,
    spawn,
    wait_ready,
    write_lines,
)

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "serving.json"
SCENARIOS = ("known", "live", "guest", "page", "page_by_traffic", "popular", "similar", "event")
PARTS = ("single", "redis", "memory", "classic")
TRAFFIC_PAGES = 20_000  # the rotation of `page_by_traffic`: about what a 10 s run sends (then wrk repeats it)
MB = 1024 * 1024


@dataclass
class Shop:
    """The store and model repository a benchmark serves, and the ids it asks for."""

    store_url: str
    models: Path
    users: list[str]  # users with events: known to the model
    items: list[str]  # items with events
    item_events: list[int]  # each item's events: a product page's share of the traffic
    events: int
    versions: list[str]


# --- the shop -------------------------------------------------------------------------------


def train_shop(workdir: Path, n_events: int, fused: bool) -> None:
    """A synthetic shop in ``workdir``: shop.duckdb, models/v0001 (EASE) and v0002 (fused)."""
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.ingest import ingest_frame
    from fusionrec.data.store import open_store
    from fusionrec.data.synthetic import generate_frames
    from fusionrec.fusion.artifacts import ModelRepository
    from fusionrec.training import TrainingSpec, train_version

    events, items, _ = generate_frames(n_events=n_events, seed=7)
    with open_store(f"duckdb:///{workdir / 'shop.duckdb'}") as store:
        ingest_frame(store, events)
        store.upsert_items(items)
    dataset = Dataset.from_frame(events, items)
    repo = ModelRepository(workdir / "models")
    for name in ("ease", "fusion") if fused else ("ease",):
        started = time.perf_counter()
        train_version(dataset, repo, TrainingSpec(name), trained_by="bench_serving", valid_days=0)
        print(f"{name} trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def versions_in(models: Path) -> list[str]:
    return sorted(p.name for p in models.glob("v[0-9]*") if (p / "manifest.json").is_file())


def make_shop(args: argparse.Namespace, scratch: Path) -> Shop:
    """Reuse ``--workdir`` when it holds a trained repository (else train one there or in scratch)."""
    source = args.workdir or scratch
    if not versions_in(source / "models"):
        source.mkdir(parents=True, exist_ok=True)
        train_shop(source, args.events, not args.no_fusion)
    store = scratch / "shop.duckdb"
    store_url = f"duckdb:///{store}"
    if source != scratch:
        shutil.copyfile(source / "shop.duckdb", store)  # live events go to the copy
        drop_live_events(store_url, source / "models" / versions_in(source / "models")[-1])
    users, items, item_events, events = read_ids(store_url)
    models = source / "models"
    return Shop(store_url, models, users, items, item_events, events, versions_in(models))


def drop_live_events(store_url: str, version: Path) -> None:
    """Remove the events stored after ``version`` was trained (an earlier benchmark's live ones):
    the service would replay them into its live state, and a known user with live events is
    scored anew instead of answered from the pre-scored list."""
    from fusionrec.data.store import open_store

    trained = json.loads((version / "manifest.json").read_text())["created_at"]
    with open_store(store_url, create=False) as store:
        store.execute("DELETE FROM events WHERE ingested_at > CAST(:t AS TIMESTAMPTZ)", {"t": trained})


def read_ids(store_url: str) -> tuple[list[str], list[str], list[int], int]:
    """Users and items with events (sorted), each item's events, and the number of events."""
    from fusionrec.data.store import open_store

    with open_store(store_url, create=False) as store:
        users = store.query_arrow("SELECT DISTINCT user_id FROM events WHERE user_id IS NOT NULL")
        items = store.query_arrow(
            "SELECT CAST(item_id AS VARCHAR) AS item_id, count(*) AS n FROM events "
            "WHERE item_id IS NOT NULL GROUP BY 1 ORDER BY 1"
        )
        events = store.counts()["events"]
    return (
        sorted(map(str, users.column(0).to_pylist())),
        items.column(0).to_pylist(),
        items.column(1).to_pylist(),
        events,
    )


def postgres_copy(shop: Shop, url: str) -> str:
    """The shop's events and items in PostgreSQL at ``url``, in a schema made anew for this run."""
    import psycopg

    from fusionrec.data.store import open_store

    schema = f"shop_{shop.events}"
    with psycopg.connect(url, autocommit=True) as conn:  # a fresh copy: no live events of earlier runs
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    url = f"{url}?schema={schema}"
    with open_store(shop.store_url, create=False) as source, open_store(url) as target:
        if target.counts()["events"] < shop.events:
            started = time.perf_counter()
            target.upsert_items(source.items_arrow())
            events = source.events_arrow()
            for offset in range(0, events.num_rows, 200_000):
                target.insert_events(events.slice(offset, 200_000))
            print(f"copied to PostgreSQL in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return url


# --- servers ----------------------------------------------------------------------------------


def service_env(shop: Shop, store_url: str, workers: int, redis: str | None, prefix: str) -> dict[str, str]:
    env = {
        "FUSIONREC_SERVING_STORE_URL": store_url,
        "FUSIONREC_SERVING_MODELS_DIR": str(shop.models),
        "FUSIONREC_SERVING_MAX_BODY_BYTES": str(64 * MB),
        "FUSIONREC_SERVING_DEV": "true",  # writes and admin calls without a key, on 127.0.0.1
        "FUSIONREC_SERVING_WORKERS": str(workers),
    }
    if redis:
        env |= {"FUSIONREC_SERVING_REDIS_URL": redis, "FUSIONREC_SERVING_REDIS_PREFIX": prefix}
    return env


def start_service(env: dict[str, str], workers: int) -> Server:
    return spawn("fusionrec", ["--factory", "fusionrec.serving.app:app_from_env"], env, workers)


def start_floor(answers: Path, workers: int) -> Server:
    app = ["--app-dir", str(ROOT), "--factory", "serving_floor:app_from_env"]
    floor = spawn("floor", app, {"BENCH_FLOOR_ANSWERS": str(answers)}, workers)
    wait_ready(floor, precomputed=False, streak=5 * workers)
    return floor


def start_up(env: dict[str, str], workers: int, probe_user: str) -> tuple[Server, dict[str, Any]]:
    """Spawn the service and time it: to /readyz 200, and to pre-scoring finished."""
    server = start_service(env, workers)
    streak = 5 * workers
    ready = wait_ready(server, precomputed=False, streak=streak)
    early = httpx.get(f"{server.url}/v1/recommendations", params={"user_id": probe_user}, timeout=30).json()
    precomputed = wait_ready(server, precomputed=True, streak=streak)
    out = {
        "start_to_ready_s": round(ready, 1),
        "start_to_precomputed_s": round(precomputed, 1),
        # What a known user got at ready: the fallback flagged "precomputing" while lists are scored.
        "answer_at_ready": {k: early.get(k) for k in ("degraded", "degraded_causes", "fallback")},
        "rss_mb_precomputed": round(rss_bytes(server.pids()) / MB),
    }
    return server, out


def restart_times(env: dict[str, str], workers: int, times: int) -> list[dict[str, Any]]:
    """Further start-ups, each stopped at /readyz 200: seconds and resident memory then."""
    out = []
    for _ in range(times):
        server = start_service(env, workers)
        try:
            ready = wait_ready(server, precomputed=False, streak=5 * workers)
            out.append(
                {"start_to_ready_s": round(ready, 1), "rss_mb_ready": round(rss_bytes(server.pids()) / MB)}
            )
        finally:
            server.stop()
    return out


def capture_answers(server: Server, shop: Shop, path: Path) -> dict[str, int]:
    """The service's own answers for the floor to repeat (bytes by route)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        event = {"session_id": "bench-capture", "item_id": shop.items[0], "event_type": "view"}
        answers = {
            "recommendations": client.get("/v1/recommendations", params={"user_id": shop.users[1], "k": 10}),
            "events": client.post("/v1/events", json=event),
            "popular": client.get("/v1/popular", params={"k": 10}),
            "similar": client.get(f"/v1/items/{shop.items[0]}/similar", params={"k": 10}),
        }
    for name, answer in answers.items():
        answer.raise_for_status()
        if name == "recommendations" and answer.json().get("degraded"):
            raise RuntimeError(f"the captured answer is degraded: {answer.text[:200]}")
    path.write_text(json.dumps({name: answer.text for name, answer in answers.items()}))
    return {name: len(answer.content) for name, answer in answers.items()}


# --- scenarios --------------------------------------------------------------------------------


# The generated shop's event ids run from "e0" to "e999999". A shop's own ids (UUIDs, say) spread
# over the whole range, so a new id sorts among the stored ones and the store's look-up of it cannot
# be pruned by the column's min and max. This prefix puts the benchmark's ids there too.
EVENT_ID_PREFIX = "e5-"


def event_json(visitor: dict[str, str], item: str, event_id: str) -> str:
    event = {**visitor, "item_id": item, "event_type": "view", "event_id": EVENT_ID_PREFIX + event_id}
    return json.dumps(event)


def scenario_lines(scenario: str, users: list[str], items: list[str], tag: str) -> list[str]:
    """The rotation of one wrk run (see serving_wrk.lua): GET paths, or path + tab + event."""
    recs = "/v1/recommendations?k=10&"
    if scenario == "known":
        return [f"{recs}user_id={u}" for u in users]
    if scenario == "live":
        return [
            f"{recs}user_id={u}\t{event_json({'user_id': u}, items[i % len(items)], f'{tag}-%N%')}"
            for i, u in enumerate(users)
        ]
    if scenario == "guest":
        session = f"{tag}-g-%N%"
        return [
            f"{recs}session_id={session}\t{event_json({'session_id': session}, i, f'{tag}-%N%')}"
            for i in items
        ]
    if scenario in ("page", "page_by_traffic"):  # a guest on a product page before any event
        return [f"{recs}session_id={tag}-p-%N%&context={i}" for i in items]
    if scenario == "event":  # the live visitor's event alone (the GET path left empty)
        return [
            f"\t{event_json({'user_id': u}, items[i % len(items)], f'{tag}-%N%')}"
            for i, u in enumerate(users)
        ]
    if scenario == "popular":
        return ["/v1/popular?k=10"]
    if scenario == "similar":
        return [f"/v1/items/{i}/similar?k=10" for i in items]
    raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")


def user_pools(shop: Shop, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Known users and live visitors: the same two halves in every run (a known user never has
    live events, which would make the service score their answer anew), each in ``rng``'s order."""
    half = len(shop.users) // 2
    split = np.random.default_rng(0).permutation(len(shop.users))
    known, live = split[:half], split[half:]
    return [shop.users[i] for i in rng.permutation(known)], [shop.users[i] for i in rng.permutation(live)]


def saturation_run(
    servers: dict[str, Server],
    shop: Shop,
    scenarios: list[str],
    args: argparse.Namespace,
    tag: str,
    seed: int,
    redis_pid: int | None = None,
) -> dict[str, Any]:
    """Each scenario by wrk against the floor, then the service: req/s, CPU per request, ratio."""
    rng = np.random.default_rng(seed)
    known_pool, live_pool = user_pools(shop, rng)
    items = [shop.items[i] for i in rng.permutation(len(shop.items))]
    # Guests land on product pages as the shop's own events fall on items: the popular pages
    # often, so guests with no history share a page's answer (`page` sends each page once).
    share = np.asarray(shop.item_events, dtype=np.float64)
    traffic = [shop.items[i] for i in rng.choice(len(shop.items), TRAFFIC_PAGES, p=share / share.sum())]
    wrk = WrkSettings(args.wrk_threads, args.wrk_connections, args.wrk_seconds)
    out: dict[str, Any] = {}
    for scenario in scenarios:
        pool = live_pool if scenario in ("live", "event") else known_pool
        pages = traffic if scenario == "page_by_traffic" else items
        lines = write_lines(
            args.scratch / f"{scenario}.txt", scenario_lines(scenario, pool, pages, f"{tag}-{scenario}")
        )
        row = {}
        for name in ("floor", "fusionrec"):
            row[name] = saturate(
                servers[name], lines, f"{tag}-{name}", wrk, redis_pid if name == "fusionrec" else None
            )
        row["ratio_to_floor"] = round(row["fusionrec"]["requests_per_s"] / row["floor"]["requests_per_s"], 3)
        out[scenario] = row
        print(f"{tag} {scenario}: {json.dumps(row)}", file=sys.stderr)
    return out


async def server_histogram(client: httpx.AsyncClient, endpoint: str) -> dict[float, float]:
    """Cumulative bucket counts of the server's own latency histogram for ``endpoint`` (GET)."""
    try:
        text = (await client.get("/metrics")).text
    except httpx.TransportError:  # a keep-alive connection the server closed while it sat idle
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


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    ms = np.array(seconds) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) if len(ms) else None for q in (50, 95, 99)}


async def open_loop(
    client: httpx.AsyncClient,
    paths: list[str],
    rate: float,
    seconds: float,
    side: Any = None,
    histogram: bool = True,
    events: list[str] | None = None,
    pids: list[int] | None = None,
    connections: int = 64,
    drain_s: float = 10.0,
) -> dict[str, Any]:
    """Requests due at ``rate`` per second whatever the answers (open loop), over ``connections``.

    The requests go over this benchmark's lean client (`serving_client`); ``client`` (httpx) reads
    the server's metrics and runs ``side``. A request waits in this client's queue when every
    connection is busy, and its latency counts from the moment it was due, so a server that falls
    behind shows it. With ``events``, each due item is a pair: ``events[i]`` POSTed, then
    ``paths[i]`` asked once the event was accepted; ``p*_ms`` is then that second request's own
    latency and ``pair_p*_ms`` the whole pair's from the moment it was due. A server that cannot
    keep up would keep the run going for long: what is still queued ``drain_s`` after the last
    request was due is not sent (``unsent``) and the percentiles are over the answered ones.
    """
    latencies: list[float] = []
    pairs: list[float] = []
    waits: list[float] = []  # due to sent: time spent in this client's queue
    counts = {"errors": 0, "degraded": 0, "unsent": 0}
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def one(conn: Connection, i: int, due: float) -> None:
        waits.append(time.perf_counter() - due)
        if events is not None:
            status, _ = await conn.request("POST", "/v1/events", events[i].encode())
            counts["errors"] += status != 202
        asked = time.perf_counter()
        status, body = await conn.request("GET", paths[i % len(paths)])
        done = time.perf_counter()
        latencies.append(done - (asked if events is not None else due))
        pairs.append(done - due)
        if status != 200:
            counts["errors"] += 1
        elif orjson.loads(body).get("degraded"):
            counts["degraded"] += 1

    async def worker(conn: Connection) -> None:
        while (job := await queue.get()) is not None:
            if time.perf_counter() > stop:
                counts["unsent"] += 1
                continue
            try:
                await one(conn, *job)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                counts["errors"] += 1
                await conn.close()  # reopened by the next request
        await conn.close()

    n = int(rate * seconds)
    endpoint = paths[0].split("?", 1)[0]
    url = client.base_url
    conns = [await Connection(str(url.host), int(url.port or 80)).open() for _ in range(connections)]
    before = await server_histogram(client, endpoint) if histogram else {}
    client_cpu = time.process_time()
    server_cpu = cpu_seconds(pids or [])
    begin = time.perf_counter()
    stop = begin + seconds + drain_s
    workers = [asyncio.create_task(worker(conn)) for conn in conns]
    side_task = asyncio.create_task(side()) if side is not None else None
    for i in range(n):
        due = begin + i / rate
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - begin
    client_cpu = time.process_time() - client_cpu
    server_cpu = cpu_seconds(pids or []) - server_cpu
    after = await server_histogram(client, endpoint) if histogram else {}
    side_result = await side_task if side_task is not None else None
    out = {
        "requests": n,
        "errors": counts["errors"],
        "degraded": counts["degraded"],
        "unsent": counts["unsent"],
        "throughput_rps": round(len(latencies) / elapsed, 1),
        **percentiles(latencies),
        "side": side_result,
        # Where the time goes: the server's own histogram (bucket bounds), this client's queue and CPU.
        "server_p50_ms_bucket": histogram_quantile(before, after, 0.50),
        "server_p99_ms_bucket": histogram_quantile(before, after, 0.99),
        "client_cpu_share": round(client_cpu / elapsed, 2),
        "client_queue_p99_ms": percentiles(waits)["p99_ms"],
    }
    if pids:  # per request sent (a pair is two)
        out["server_cpu_ms_per_request"] = round(server_cpu / (n * (2 if events else 1)) * 1000, 3)
    if events is not None:
        out |= {f"pair_{k}": v for k, v in percentiles(pairs).items()}
    return out


async def open_loop_run(
    servers: dict[str, Server], shop: Shop, args: argparse.Namespace, tag: str, seed: int
) -> dict[str, Any]:
    """Known users at ``--known-rate`` and live pairs at ``--pair-rate``, floor then service."""
    rng = np.random.default_rng(seed)
    known_pool, live_pool = user_pools(shop, rng)
    known = [f"/v1/recommendations?k=10&user_id={u}" for u in known_pool[::-1]]  # not wrk's first ones
    visitors = live_pool[::-1]
    live = [f"/v1/recommendations?k=10&user_id={u}" for u in visitors]
    n_pairs = int(args.pair_rate * args.open_seconds)
    items = rng.choice(len(shop.items), n_pairs)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    out: dict[str, Any] = {}
    for name in ("floor", "fusionrec"):
        async with httpx.AsyncClient(base_url=servers[name].url, limits=limits, timeout=10) as client:
            histogram = name == "fusionrec"
            pids = servers[name].pids()
            events = [
                event_json({"user_id": visitors[i % len(visitors)]}, shop.items[j], f"{tag}-{name}-ol-{i}")
                for i, j in enumerate(items.tolist())
            ]
            out[name] = {
                "known": await open_loop(
                    client, known, args.known_rate, args.open_seconds, histogram=histogram, pids=pids
                ),
                "live": await open_loop(
                    client,
                    live,
                    args.pair_rate,
                    args.open_seconds,
                    histogram=histogram,
                    events=events,
                    pids=pids,
                ),
            }
        print(f"{tag} open loop {name}: {json.dumps(out[name])}", file=sys.stderr)
    return out


# --- medians ----------------------------------------------------------------------------------


def median_dicts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median of the runs' numbers (errors summed); nested dicts alike."""
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [r.get(key) for r in runs]
        if isinstance(first, dict):
            out[key] = median_dicts(values)
        elif key in ("errors", "requests", "degraded", "unsent"):
            out[key] = int(sum(v or 0 for v in values))
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = round(float(np.median(values)), 3)
    return out


# --- parts --------------------------------------------------------------------------------------


def variant(shop: Shop, store_url: str, args: argparse.Namespace, workers: int, redis: str | None) -> dict:
    """Start-up, then ``--runs`` runs of saturation and open loop against service and floor."""
    tag = f"b{int(time.time())}w{workers}"
    env = service_env(shop, store_url, workers, redis, f"frbench:{tag}:")
    scenarios = list(args.redis_scenarios if redis else args.scenarios)
    redis_pid = find_process("redis-server") if redis else None  # its CPU counts too
    server, startup = start_up(env, workers, shop.users[0])
    floor = None
    try:
        sizes = capture_answers(server, shop, args.scratch / "answers.json")
        floor = start_floor(args.scratch / "answers.json", workers)
        startup["floor_rss_mb"] = round(rss_bytes(floor.pids()) / MB)
        servers = {"floor": floor, "fusionrec": server}
        runs = []
        for run in range(args.runs):
            runs.append(
                {
                    "saturation": saturation_run(
                        servers, shop, scenarios, args, f"{tag}r{run}", run, redis_pid
                    ),
                    "open_loop": asyncio.run(
                        open_loop_run(servers, shop, args, f"{tag}r{run}", seed=100 + run)
                    ),
                    "load_average": os.getloadavg(),
                }
            )
        startup["rss_mb_after_runs"] = round(rss_bytes(server.pids()) / MB)
    finally:
        server.stop()
        if floor is not None:
            floor.stop()
    startup["restarts"] = restart_times(env, workers, args.restarts)
    starts = [startup["start_to_ready_s"]] + [r["start_to_ready_s"] for r in startup["restarts"]]
    startup["start_to_ready_s_median"] = float(np.median(starts))
    if redis:
        clear_redis(redis, f"frbench:{tag}:")
    return {
        "workers": workers,
        "store": store_url.split(":", 1)[0],
        "redis": redis is not None,
        "answer_bytes": sizes,
        "startup": startup,
        "median": median_dicts(runs),
        "runs": runs,
    }


def clear_redis(url: str, prefix: str) -> None:
    """Delete the keys this benchmark left under ``prefix``."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


def memory_part(shop: Shop) -> dict[str, Any]:
    """The service loaded in this process: resident memory grown and its arrays by kind."""
    from fusionrec.serving.service import Service
    from fusionrec.serving.settings import load_settings
    from serving_memory import inventory

    pid = [os.getpid()]
    base = rss_bytes(pid)
    svc = Service(load_settings(None, store_url=shop.store_url, models_dir=shop.models, log_exposures=False))
    svc.start()
    try:
        active = svc.registry.active
        assert active is not None, "no active version"
        while "precomputed" not in active.extras:
            time.sleep(0.5)
        grown = rss_bytes(pid) - base
        n_users, n_items = len(active.user_index), len(active.item_ids)
        kinds = inventory([active, svc.catalogue], n_users, n_items)
    finally:
        svc.close()
    counted = sum(kinds.values())
    return {
        "users": n_users,
        "items": n_items,
        "rss_grown_mb": round(grown / MB),
        "arrays_mb": {k: round(v / MB, 1) for k, v in kinds.items()},
        "not_attributed_mb": round((grown - counted) / MB),
        "bytes_per_user": round(kinds["user"] / n_users),
        "bytes_per_item": round(kinds["item"] / n_items),
        "item_item_bytes_per_item": round(kinds["item_item"] / n_items),
    }


def classic_part(shop: Shop, args: argparse.Namespace) -> dict[str, Any]:
    """The earlier protocol: open loop at ``--rate`` (fused, cached, popular, activation), ingestion."""
    env = service_env(shop, shop.store_url, 1, None, "")
    server = start_service(env, 1)
    try:
        wait_ready(server, precomputed=True)
        results = asyncio.run(classic_scenarios(server.url, shop, args))
    finally:
        server.stop()
    results["in_process"] = service_times(shop, args.inprocess)
    return results


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


async def classic_scenarios(url: str, shop: Shop, args: argparse.Namespace) -> dict[str, Any]:
    users, items = shop.users, shop.items
    rng = np.random.default_rng(0)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        for user in users[:50]:  # warm-up: code paths, not the users measured below
            await client.get("/v1/recommendations", params={"user_id": user, "k": 10})
        runs: dict[str, list[dict[str, Any]]] = {
            "fused": [],
            "cached": [],
            "popular": [],
            "activation_under_load": [],
        }
        for _run in range(args.runs):
            order = rng.permutation(len(users))
            paths = [f"/v1/recommendations?user_id={users[i]}&k=10" for i in order]
            runs["fused"].append(await open_loop(client, paths, args.rate, args.seconds))
            hot = [f"/v1/recommendations?user_id={users[i]}&k=10" for i in order[:50]]
            for path in hot:
                await client.get(path)
            runs["cached"].append(await open_loop(client, hot, args.rate, args.seconds))
            runs["popular"].append(await open_loop(client, ["/v1/popular?k=10"], args.rate, args.seconds))
            if len(shop.versions) < 2:
                continue  # activation swaps two versions

            async def swap() -> dict[str, Any]:
                swaps, failed = 0, 0
                for i in range(int(args.seconds)):
                    await asyncio.sleep(1.0)
                    version = shop.versions[i % 2]
                    response = await client.post(f"/v1/models/{version}/activate", params={"force": True})
                    swaps += 1
                    failed += response.status_code != 200
                await client.post(f"/v1/models/{shop.versions[-1]}/activate", params={"force": True})
                return {"swaps": swaps, "failed_swaps": failed}

            paths = [f"/v1/recommendations?user_id={users[i]}&k=10" for i in rng.permutation(len(users))]
            runs["activation_under_load"].append(
                await open_loop(client, paths, args.rate, args.seconds, side=swap)
            )
        results: dict[str, Any] = {name: {**median_dicts(r), "runs": r} for name, r in runs.items() if r}
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


def service_times(shop: Shop, n: int) -> dict[str, Any]:
    """Per-request cost inside the service (no HTTP): wall percentiles and CPU per call."""
    from fusionrec.serving.recommend import RecQuery, popular, recommend
    from fusionrec.serving.service import Service
    from fusionrec.serving.settings import load_settings

    users, items = shop.users, shop.items
    svc = Service(
        load_settings(
            None, store_url=shop.store_url, models_dir=shop.models, cache_ttl_s=0, log_exposures=False
        )
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


# --- main -------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000, help="size of the synthetic shop trained here")
    parser.add_argument(
        "--workdir", type=Path, help="a store and trained repository to reuse (or train into)"
    )
    parser.add_argument("--no-fusion", action="store_true", help="serve EASE only (v0002 not trained)")
    parser.add_argument("--parts", default="single,redis,memory,classic", help=f"of {', '.join(PARTS)}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--wrk-connections", type=int, default=16)
    parser.add_argument("--wrk-seconds", type=float, default=10.0)
    parser.add_argument("--known-rate", type=float, default=300.0, help="open loop, known users: requests/s")
    parser.add_argument("--pair-rate", type=float, default=150.0, help="open loop, live visitors: pairs/s")
    parser.add_argument("--open-seconds", type=float, default=10.0)
    parser.add_argument("--restarts", type=int, default=2, help="further start-ups timed to /readyz")
    parser.add_argument("--workers", type=int, default=2, help="workers of the redis part")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/fusionrec_bench_serving")
    parser.add_argument("--redis-scenarios", default="known,live,event")
    parser.add_argument("--rate", type=float, default=300.0, help="classic: open-loop requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="classic: seconds per scenario")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--inprocess", type=int, default=300, help="classic: users timed inside the service")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    for name, allowed in (("parts", PARTS), ("scenarios", SCENARIOS), ("redis_scenarios", SCENARIOS)):
        chosen = [s for s in getattr(args, name).split(",") if s]
        unknown = sorted(set(chosen) - set(allowed))
        if unknown:
            parser.error(
                f"--{name.replace('_', '-')}: unknown {', '.join(unknown)}; expected {', '.join(allowed)}"
            )
        setattr(args, name, chosen)
    return args


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` when it does not exist."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    args = parse_args()
    args.scratch = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    shop = make_shop(args, args.scratch)
    parts = {
        "memory": lambda: memory_part(shop),
        "single": lambda: variant(shop, shop.store_url, args, 1, None),
        "redis": lambda: variant(shop, redis_store(shop, args), args, args.workers, args.redis),
        "classic": lambda: classic_part(shop, args),
    }
    results: dict[str, Any] = {}
    for name in [p for p in PARTS if p in args.parts]:
        before = os.getloadavg()
        results[name] = parts[name]() | {
            "load_average_before": before,
            "load_average_after": os.getloadavg(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    write_results(args, shop, results)
    shutil.rmtree(args.scratch, ignore_errors=True)


def redis_store(shop: Shop, args: argparse.Namespace) -> str:
    """The PostgreSQL copy of the shop the workers share (a DuckDB file has one writer)."""
    ensure_database(args.postgres)
    return postgres_copy(shop, args.postgres)


def write_results(args: argparse.Namespace, shop: Shop, results: dict[str, Any]) -> None:
    """Merge this invocation's parts into ``--out`` (other parts, from earlier invocations, stay)."""
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    same_shop = previous.get("shop", {}).get("events") == shop.events
    merged = previous.get("results", {}) if same_shop else {}
    protocol = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "scratch"}
    for part in results:
        merged[part] = results[part] | {"protocol": protocol}
    out = {
        "benchmark": "serving",
        "shop": {
            "events": shop.events,
            "users": len(shop.users),
            "items": len(shop.items),
            "versions": {
                v: json.loads((shop.models / v / "manifest.json").read_text())["pipeline"]["model"]
                for v in shop.versions
            },
            "workdir": str(args.workdir) if args.workdir else None,
        },
        "wrk": {
            "threads": args.wrk_threads,
            "connections": args.wrk_connections,
            "seconds": args.wrk_seconds,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": merged,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(summary(merged), indent=2))


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of each part."""
    out: dict[str, Any] = {}
    for part in ("single", "redis"):
        if part in results:
            median = results[part]["median"]
            out[part] = {
                "start_to_ready_s": results[part]["startup"]["start_to_ready_s_median"],
                "saturation": {
                    s: {
                        "rps": row["fusionrec"]["requests_per_s"],
                        "floor_rps": row["floor"]["requests_per_s"],
                        "ratio": row["ratio_to_floor"],
                        "cpu_ms": row["fusionrec"]["server_cpu_ms_per_request"],
                    }
                    for s, row in median["saturation"].items()
                },
                "open_loop": {
                    s: {k: median["open_loop"]["fusionrec"][s].get(k) for k in ("p50_ms", "p99_ms", "errors")}
                    for s in ("known", "live")
                },
            }
    if "memory" in results:
        out["memory"] = {k: v for k, v in results["memory"].items() if k != "protocol"}
    return out


if __name__ == "__main__":
    main()
