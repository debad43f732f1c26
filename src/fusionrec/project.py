"""The project file ``fusionrec.toml`` in the working folder: where it is, and its ``[store]`` URL.

Each subsystem validates its own section (``[pipeline]``, ``[engine]``, ``[serving]``); this module
is the one place that names the file and the default store, so every command agrees on both.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

PROJECT_FILE = Path("fusionrec.toml")
DEFAULT_STORE_URL = "duckdb:///fusionrec.duckdb"


class ProjectFileError(ValueError):
    """``fusionrec.toml`` cannot be read, or a section is not what it should be; names file and key."""


def read_project_file(path: Path = PROJECT_FILE) -> dict[str, Any]:
    """The parsed file, or ``{}`` when there is none."""
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ProjectFileError(f"{path}: not valid TOML ({error})") from error


def configured_store_url(path: Path = PROJECT_FILE) -> str | None:
    """``[store] url`` of the project file, or None when the file or the key is absent."""
    section = read_project_file(path).get("store")
    if section is None:
        return None
    if not isinstance(section, dict) or not isinstance(section.get("url", ""), str):
        raise ProjectFileError(f'{path.name}:store: expected a table with url = "duckdb:///..."')
    return section.get("url")


def store_url(option: str | None, path: Path = PROJECT_FILE) -> str:
    """The store a command uses: ``--store`` (or ``FUSIONREC_STORE``), else the project file's
    ``[store] url``, else `DEFAULT_STORE_URL`."""
    return option or configured_store_url(path) or DEFAULT_STORE_URL
