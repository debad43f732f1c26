"""Where the real public datasets live (for tests, benchmarks and `evaluate --dataset`)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[3]


def data_root() -> Path:
    """The shared data folder: ``$FUSIONREC_DATA`` if set, else ``../shared/data`` beside the checkout.

    Falls back to ``./../shared/data`` relative to the working directory, for installed (non-editable)
    copies of the package.
    """
    env = os.environ.get("FUSIONREC_DATA")
    if env:
        return Path(env).expanduser()
    beside_repo = _REPO_ROOT.parent / "shared" / "data"
    if beside_repo.is_dir():
        return beside_repo
    return Path.cwd().parent / "shared" / "data"
