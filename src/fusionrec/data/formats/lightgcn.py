"""LightGCN / NGCF benchmark folders (Gowalla, Yelp2018, Amazon-book): ``user item item ...`` lines.

A folder holds ``train.txt`` (or ``train.part1.txt``, ``train.part2.txt``, ... read in part order as
one file), ``test.txt`` (the fixed held-out split) and optionally ``user_list.txt`` /
``item_list.txt`` (header ``org_id remap_id``: the original id of each dense id). Ids are dense
from 0 and are kept as they are (as strings). A path to a single ``.txt`` file reads that file as
the training data, with ``test.txt`` beside it as the test split when the file's name starts
with "train".

The data is implicit feedback without times. Interactions become ``rating`` events (weight 1 in
the canonical types, no quantity), so the interaction matrix stays binary. Times are synthesised
to keep file order: training interaction *i* (0-based, across parts) is at
`SYNTHETIC_EPOCH` + *i* seconds and test interaction *j* at `SYNTHETIC_EPOCH` + (n_train + *j*)
seconds, so every test event comes after every training event.

Parsing is vectorised: one ``split`` per line for its length, numpy for the numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.formats.base import (
    FormatError,
    SourceData,
    constant,
    events_frame,
    existing,
    id_strings,
    items_frame,
    json_objects,
    part_files,
    synthetic_timestamps,
    users_frame,
)


def read_user_item_lines(files: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse ``user item item ...`` lines from ``files`` read in order as one file.

    Returns ``(user, item, line)`` int64 arrays, one entry per interaction; ``line`` is the 1-based
    line number counted across the files. A line with a user and no items gives no interaction.
    """
    users, items, lines = [], [], []
    line_base = 0
    for file in files:
        text = _read_text(file)
        rows = text.splitlines()
        lengths = np.fromiter((len(r.split()) for r in rows), dtype=np.int64, count=len(rows))
        values = _integers(text, file, rows, int(lengths.sum()))
        starts = np.cumsum(lengths) - lengths
        filled = lengths > 0
        per_line = lengths[filled] - 1
        is_item = np.ones(values.size, dtype=bool)
        is_item[starts[filled]] = False
        users.append(np.repeat(values[starts[filled]], per_line))
        items.append(values[is_item])
        lines.append(np.repeat(np.flatnonzero(filled) + 1 + line_base, per_line))
        line_base += len(rows)
    if not users:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(users), np.concatenate(items), np.concatenate(lines)


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not text ({exc.reason} at byte {exc.start})", path=file) from exc


def _integers(text: str, file: Path, rows: list[str], expected: int) -> np.ndarray:
    """Every whitespace-separated token of ``text`` as int64; a non-integer is a `FormatError`."""
    try:
        values = np.fromstring(text, dtype=np.int64, sep=" ")
    except ValueError:
        values = None
    if values is not None and values.size == expected and (values.size == 0 or values.max() < 2**63 - 1):
        return values
    for number, row in enumerate(rows, start=1):  # error path only: find the bad token
        for position, token in enumerate(row.split()):
            if not (token.isascii() and token.lstrip("-").isdigit()) or abs(int(token)) >= 2**63 - 1:
                field = "user" if position == 0 else f"item {position}"
                raise FormatError(f"{token!r} is not an integer id", path=file, line=number, field=field)
    raise FormatError("could not read the integer ids", path=file)


def lines_to_events(user: np.ndarray, item: np.ndarray, line: np.ndarray, start: int = 0) -> pd.DataFrame:
    """Interactions -> ``rating`` events at synthetic, order-preserving times."""
    return events_frame(
        {
            "user_id": id_strings(user),
            "item_id": id_strings(item),
            "event_type": constant("rating", user.size),
            "timestamp": synthetic_timestamps(user.size, start=start),
        },
        row_number=line,
    )


def _id_map(file: Path | None, key: str) -> pd.DataFrame | None:
    """``org_id remap_id`` lists -> frame with the dense id and ``{"org_id": ...}`` attributes."""
    if file is None:
        return None
    try:
        table = pd.read_csv(file, sep=" ", dtype="str", skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise FormatError(f"expected 'org_id remap_id' columns ({exc})", path=file) from exc
    if list(table.columns[:2]) != ["org_id", "remap_id"]:
        raise FormatError("expected a header line 'org_id remap_id'", path=file, line=1)
    return pd.DataFrame({key: id_strings(table["remap_id"]), "attributes": json_objects(table, ["org_id"])})


def read_lightgcn(path: str | Path) -> SourceData:
    """Read a LightGCN-style folder (or one training file) into train events and fixed test events."""
    p = existing(path)
    if p.is_dir():
        train_files = part_files(p, "train", ".txt")
        if not train_files:
            raise FormatError("no train.txt or train.part*.txt", path=p)
        folder = p
    else:
        train_files, folder = [p], p.parent
    test_file = folder / "test.txt"
    has_test = test_file.is_file() and (p.is_dir() or p.name.startswith("train"))

    user, item, line = read_user_item_lines(train_files)
    events = lines_to_events(user, item, line)
    test_events = None
    if has_test:
        t_user, t_item, t_line = read_user_item_lines([test_file])
        test_events = lines_to_events(t_user, t_item, t_line, start=user.size)

    users = _id_map(_beside(folder, "user_list.txt"), "user_id")
    items = _id_map(_beside(folder, "item_list.txt"), "item_id")
    return SourceData(
        events=events,
        items=None if items is None else items_frame(items),
        users=None if users is None else users_frame(users),
        test_events=test_events,
        protocol="fixed",
        name=folder.name if p.is_dir() else p.stem,
    )


def _beside(folder: Path, name: str) -> Path | None:
    candidate = folder / name
    return candidate if candidate.is_file() else None
