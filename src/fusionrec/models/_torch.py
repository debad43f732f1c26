"""Shared PyTorch plumbing for the deep models: the optional import, devices, threads, seeding.

Torch is an optional dependency (``fusionrec[deep]``), so it is imported here, on first use, and
never at module import time of a model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.models.base import ModelError

if TYPE_CHECKING:
    import torch as torch_module


def require_torch() -> Any:
    """The ``torch`` module, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError as error:  # pragma: no cover - torch is installed wherever tests run
        raise ImportError(
            "this model needs PyTorch, which is not installed: pip install 'fusionrec[deep]'"
        ) from error
    return torch


def resolve_device(name: str) -> torch_module.device:
    """``"cpu"``, ``"cuda"``/``"cuda:N"`` (must be available) or ``"auto"`` (cuda when present)."""
    torch = require_torch()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ModelError(f"device {name!r} is not a valid torch device: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {name!r} was asked for but CUDA is not available; use device='cpu'")
    return device


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` intra-op threads (None: leave torch's setting), then restore."""
    torch = require_torch()
    previous = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def seeded_generator(seed: int, device: torch_module.device) -> torch_module.Generator:
    """Seed torch's global state (for parameter init) and return a generator for sampling."""
    torch = require_torch()
    torch.manual_seed(seed)
    if device.type == "cuda":  # pragma: no cover - no GPU in CI
        torch.cuda.manual_seed_all(seed)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def to_numpy(tensor: torch_module.Tensor) -> np.ndarray:
    """A float32 numpy copy of ``tensor`` (detached, on the CPU)."""
    return tensor.detach().to("cpu").numpy().astype(np.float32, copy=True)
