"""The project file ``fusionrec.toml`` in the working folder: where it is and how it is read.

This module is the one place that names the file and the default store, so every part agrees on
both; it imports nothing of fusionrec, so any layer may use it. The typed model of the sections is
`fusionrec.configuration.ProjectConfig`, which the command line loads (and so validates) first.
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
