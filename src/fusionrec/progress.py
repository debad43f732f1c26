"""Progress of long work: library code reports steps, whoever listens shows them.

Training loops, evaluation and tuning call `step` ("sasrec epochs", 3 of 30, "loss 8.41"); it
costs nothing when no one listens. The command line listens with Rich bars
(`fusionrec.cli.common.work_progress`), so the library never prints and never imports Rich.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# (task, done, total or None, detail) -> None
Listener = Callable[[str, int, int | None, str], None]

_listener: ContextVar[Listener | None] = ContextVar("fusionrec_progress", default=None)


def step(task: str, done: int, total: int | None = None, detail: str = "") -> None:
    """``done`` of ``total`` units of ``task`` are finished; ``detail`` says what was last done."""
    listener = _listener.get()
    if listener is not None:
        listener(task, done, total, detail)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Steps reported in this context (this thread or task) go to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
