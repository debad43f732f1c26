"""PyTorch helpers shared by the neural models: the optional import, devices, weights as numpy.

torch lives in the ``deep`` extra; this module is the one place that imports it, so a missing
install gives one clear message instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)
STATE_PREFIX = "torch__"


def require_torch() -> Any:
    """The ``torch`` module, or an ImportError that says to install ``fusionrec[deep]``."""
    try:
        import torch
    except ImportError as error:  # pragma: no cover - CI installs every extra
        raise ImportError(
            "this model needs PyTorch: install fusionrec[deep] (pip install 'fusionrec[deep]')",
            name="torch",
        ) from error
    return torch


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"``; CUDA falls back to CPU (with a warning) when absent."""
    torch = require_torch()
    if name.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("device %r requested but CUDA is not available: training on the CPU", name)
        return torch.device("cpu")
    return torch.device(name)


@contextlib.contextmanager
def seeded(seed: int, threads: int | None) -> Iterator[None]:
    """Seed torch's CPU generator and fix the thread count, restoring both afterwards.

    Forking the RNG keeps the caller's global torch random state untouched; a fixed thread count
    keeps CPU reductions in the same order, so the same seed gives the same model.
    """
    torch = require_torch()
    previous_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous_threads)


def module_arrays(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """A module's weights as float32 numpy arrays keyed ``torch__<parameter name>``."""
    return {
        STATE_PREFIX + name: tensor.detach().cpu().numpy().copy() for name, tensor in module.state_dict().items()
    }


def load_module_arrays(module: torch.nn.Module, state: dict[str, Any]) -> None:
    """Copy arrays saved by `module_arrays` back into ``module`` (shapes must match)."""
    torch = require_torch()
    current = module.state_dict()
    missing = [name for name in current if STATE_PREFIX + name not in state]
    if missing:
        raise ValueError(f"saved model lacks weights for {', '.join(missing)}")
    module.load_state_dict({name: torch.from_numpy(np.asarray(state[STATE_PREFIX + name])) for name in current})
