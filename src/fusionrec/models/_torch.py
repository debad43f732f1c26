"""Shared PyTorch plumbing for the deep models: the optional import, devices, threads, seeding, weights.

Torch is an optional dependency (``fusionrec[deep]``). This module is the one place that imports
it, so a missing install gives one clear message instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.extras import require
from fusionrec.models.base import ModelError

if TYPE_CHECKING:
    import torch as torch_module

logger = logging.getLogger(__name__)
STATE_PREFIX = "torch__"  # key prefix of module weights in a saved model's arrays


def require_torch() -> Any:
    """The ``torch`` module, or an ImportError that says to install ``fusionrec[deep]``."""
    return require("torch", "this model")


def resolve_device(name: str, *, cpu_fallback: bool = False) -> torch_module.device:
    """``"cpu"``, ``"cuda"``/``"cuda:N"`` or ``"auto"`` (cuda when present).

    CUDA asked for but absent raises a `ModelError`, or with ``cpu_fallback`` logs a warning and
    gives the CPU.
    """
    torch = require_torch()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ModelError(f"device {name!r} is not a valid torch device: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        if cpu_fallback:
            logger.warning("device %r requested but CUDA is not available: training on the CPU", name)
            return torch.device("cpu")
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


@contextmanager
def seeded(seed: int, threads: int | None) -> Iterator[None]:
    """Seed torch's CPU generator and fix the thread count, restoring both afterwards.

    Forking the RNG keeps the caller's global torch random state untouched; a fixed thread count
    keeps CPU reductions in the same order, so the same seed gives the same model.
    """
    torch = require_torch()
    with torch.random.fork_rng(devices=[]), torch_threads(threads):
        torch.manual_seed(seed)
        yield


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


def module_arrays(module: torch_module.nn.Module) -> dict[str, np.ndarray]:
    """A module's state as numpy arrays (dtypes kept) keyed ``torch__<parameter name>``."""
    return {
        STATE_PREFIX + name: tensor.detach().cpu().numpy().copy()
        for name, tensor in module.state_dict().items()
    }


def load_module_arrays(module: torch_module.nn.Module, state: dict[str, Any]) -> None:
    """Copy arrays saved by `module_arrays` back into ``module`` (shapes must match)."""
    torch = require_torch()
    current = module.state_dict()
    missing = [name for name in current if STATE_PREFIX + name not in state]
    if missing:
        raise ValueError(f"saved model lacks weights for {', '.join(missing)}")
    module.load_state_dict(
        {name: torch.from_numpy(np.asarray(state[STATE_PREFIX + name])) for name in current}
    )
