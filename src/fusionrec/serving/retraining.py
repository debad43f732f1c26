"""Retraining inside the service: on request (``POST /v1/models/train``) and on a schedule.

One run at a time, in a background thread, through the one training path
(`fusionrec.training.train_version`): the new version is scored beside the active one on the same
window, then gated and swapped in only if it holds up. Its state is what ``GET /v1/models`` shows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fusionrec.data.store import EventStore
from fusionrec.serving.registry import VersionRegistry

logger = logging.getLogger(__name__)


HISTORY = 20  # finished runs kept for the dashboard's training panel


class TooSoonError(RuntimeError):
    """Retraining was asked for again before ``retrain_min_interval_s`` passed."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        super().__init__(
            f"retraining was started less than its minimum interval ago; retry in {wait_s:.0f} s"
        )


class Retrainer:
    """Background training runs for one service; ``state`` describes the last (or current) run."""

    def __init__(
        self,
        registry: VersionRegistry,
        store: EventStore,
        on_writer: Callable[[Callable[[], Any]], Any],
        *,
        model: str | None = None,
        pipeline: Path | None = None,
        min_interval_s: float = 0.0,
        keep_versions: int = 10,
    ) -> None:
        self.registry = registry
        self.store = store
        self.on_writer = on_writer  # the store is read on the service's writer thread
        self.model = model  # a registered model name, else the pipeline file, else the project's
        self.pipeline = pipeline
        self.min_interval_s = min_interval_s  # between runs started on request
        self.keep_versions = keep_versions
        self.state: dict[str, Any] = {"state": "idle"}
        self.history: list[dict[str, Any]] = []  # finished runs, newest first (at most HISTORY)
        self._lock = threading.Lock()
        self._last_request = -float("inf")

    def start(self, model_name: str | None = None, *, requested: bool = False) -> dict[str, Any]:
        """Start a run in a background thread; `RuntimeError` while one is going, `TooSoonError`
        for a ``requested`` run within ``min_interval_s`` of the previous one."""
        from fusionrec.models.registry import MODEL_PATHS

        name = model_name or self.model
        if name is not None and name not in MODEL_PATHS:
            raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODEL_PATHS))}")
        with self._lock:
            if self.state.get("state") == "running":
                raise RuntimeError("a training run is already in progress")
            if requested:
                wait = self._last_request + self.min_interval_s - time.monotonic()
                if wait > 0:
                    raise TooSoonError(wait)
                self._last_request = time.monotonic()
            self.state = {
                "state": "running",
                "model": name or "pipeline",
                "started_at": time.time(),
                "trigger": "request" if requested else "schedule",
            }
        threading.Thread(target=self._run, args=(name,), name="fusionrec-train", daemon=True).start()
        return dict(self.state)

    def scheduled(self) -> None:
        """The ``retrain_every_s`` tick: start a run unless one is still going (then skip this tick)."""
        try:
            self.start()
            logger.info("scheduled retraining started")
        except RuntimeError:
            logger.info("scheduled retraining skipped: the previous run is still going")

    def _run(self, name: str | None) -> None:
        from fusionrec.data.dataset import Dataset
        from fusionrec.progress import listening
        from fusionrec.training import (
            AUTO_REFERENCE,
            TrainingSpec,
            auto_spec,
            resolve_pipeline,
            train_version,
        )

        started = time.time()
        trigger = self.state.get("trigger")

        def progress(task: str, done: int, total: int | None, detail: str) -> None:
            # The steps of `fusionrec.progress` (epochs, candidates, evaluation) as the run's progress.
            self.state = {
                **self.state,
                "progress": {"task": task, "done": done, "total": total, "detail": detail, "at": time.time()},
            }

        try:
            spec = (
                TrainingSpec(name, {}, f"model {name}")
                if name is not None
                else resolve_pipeline(self.pipeline, auto=auto_spec())
            )
            progress("reading events", 0, None, "")
            dataset = self.on_writer(lambda: Dataset.from_store(self.store))
            active = self.registry.active
            with listening(progress):
                _, manifest = train_version(
                    dataset,
                    self.registry.repository,
                    spec,
                    trained_by="service",
                    reference=active.manifest if active is not None else AUTO_REFERENCE,
                )
            report = self.registry.activate(manifest.version)
            self.registry.prune(self.keep_versions)
            self.state = {
                "state": "done",
                "version": manifest.version,
                "gate": report.to_dict(),
                "events": dataset.n_events,
                "seconds": round(time.time() - started, 1),
                "model": name or "pipeline",
                "started_at": started,
                "trigger": trigger,
            }
        except Exception as error:  # reported through GET /v1/models, never raised into the service
            logger.error("training failed: %s: %s", type(error).__name__, error)
            self.state = {
                "state": "failed",
                "error": f"{type(error).__name__}: {error}",
                "model": name or "pipeline",
                "started_at": started,
                "seconds": round(time.time() - started, 1),
                "trigger": trigger,
            }
        self.history = [dict(self.state), *self.history][:HISTORY]
