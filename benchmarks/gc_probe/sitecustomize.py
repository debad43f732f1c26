"""The cycle collector's work in a running server, for `docs/benchmarks.md` (issue 23).

Put this folder first on the server's ``PYTHONPATH`` (Python imports ``sitecustomize`` at start):

    PYTHONPATH=benchmarks/gc_probe uvicorn --factory fusionrec.serving.app:app_from_env ...
    kill -USR2 PID   # the window starts: counts and times from zero
    kill -USR1 PID   # writes /tmp/gc_stats_PID.json

The JSON holds, per generation, the number of collections, their total and longest wall time in
seconds, and the objects the collector tracks and those frozen (`gc.freeze`) at the time of writing.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from typing import Any

_stats: dict[int, list[float]] = {}
_started = [0.0]


def _reset(*_: Any) -> None:
    _stats.clear()
    _stats.update({generation: [0, 0.0, 0.0] for generation in range(3)})


def _time_collections(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    took = time.perf_counter() - _started[0]
    entry = _stats[info["generation"]]
    entry[0] += 1
    entry[1] += took
    entry[2] = max(entry[2], took)


def _write(*_: Any) -> None:
    stats = {
        str(generation): {"collections": int(n), "total_s": round(total, 4), "longest_s": round(longest, 4)}
        for generation, (n, total, longest) in _stats.items()
    }
    report = {"generations": stats, "tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count()}
    with open(f"/tmp/gc_stats_{os.getpid()}.json", "w") as out:
        json.dump(report, out)


_reset()
gc.callbacks.append(_time_collections)
signal.signal(signal.SIGUSR1, _write)
signal.signal(signal.SIGUSR2, _reset)
