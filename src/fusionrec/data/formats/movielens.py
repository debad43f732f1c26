"""MovieLens 100K (GroupLens ``ml-100k`` folder): ratings, movies and users.

- ``u.data`` (tab-separated ``user item rating timestamp``) -> ``rating`` events. The explicit
  rating value (1-5) lives in ``quantity``; the event-type weight stays 1, so weighted matrices
  count ratings while rating-prediction code reads ``quantity``.
- ``u.item`` (Latin-1, ``|``-separated: id, title, release date, video release date, IMDb URL,
  then 19 genre flags in ``u.genre`` order) -> items: title; ``category`` = the first flagged
  genre; ``tags`` = every flagged genre; ``created_at`` = the release date; the URL and video
  release date in ``attributes``.
- ``u.user`` (``|``-separated: id, age, gender, occupation, zip) -> users, all in ``attributes``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.formats.base import (
    SourceData,
    constant,
    events_frame,
    existing,
    id_strings,
    items_frame,
    json_objects,
    parse_numbers,
    parse_times,
    read_delimited,
    users_frame,
    utc_from_epoch,
)

GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]  # fmt: skip
ITEM_FIELDS = ["item_id", "title", "release_date", "video_release_date", "imdb_url"]
USER_FIELDS = ["user_id", "age", "gender", "occupation", "zip"]


def read_movielens(path: str | Path) -> SourceData:
    """Read an ``ml-100k`` folder (or its ``u.data``; ``u.item`` / ``u.user`` are used when beside it)."""
    p = existing(path)
    folder = p if p.is_dir() else p.parent
    ratings_file = folder / "u.data" if p.is_dir() else p
    raw = read_delimited(
        existing(ratings_file), sep="\t", names=["user_id", "item_id", "rating", "timestamp"]
    )
    seconds = parse_numbers(raw["timestamp"], path=ratings_file, field="timestamp", first_line=1,
                            integer=True, required=True)  # fmt: skip
    rating = parse_numbers(raw["rating"], path=ratings_file, field="rating", first_line=1)
    events = events_frame(
        {
            "user_id": id_strings(raw["user_id"]),
            "item_id": id_strings(raw["item_id"]),
            "event_type": constant("rating", len(raw)),
            "timestamp": utc_from_epoch(seconds.to_numpy(dtype=np.int64), "s"),
            "quantity": rating,
        },
        row_number=range(1, len(raw) + 1),
    )
    item_file, user_file = folder / "u.item", folder / "u.user"
    return SourceData(
        events=events,
        items=_items(item_file, _genres(folder / "u.genre")) if item_file.is_file() else None,
        users=_users(user_file) if user_file.is_file() else None,
        protocol="ratings_kfold",
        name=folder.name,
    )


def _genres(file: Path) -> list[str]:
    """Genre names in flag order from ``u.genre`` (``name|index``), else the 100K's standard list."""
    if not file.is_file():
        return GENRES
    table = read_delimited(file, sep="|", names=["name", "index"], encoding="latin-1").dropna(how="all")
    order = parse_numbers(table["index"], path=file, field="index", first_line=1, integer=True, required=True)
    return table["name"].to_numpy()[np.argsort(order.to_numpy())].tolist()


def _items(file: Path, genres: list[str]) -> pd.DataFrame:
    raw = read_delimited(file, sep="|", names=ITEM_FIELDS + genres, encoding="latin-1")
    flags = np.column_stack(
        [parse_numbers(raw[g], path=file, field=g, first_line=1, integer=True).fillna(0) > 0 for g in genres]
    )
    names = np.array(genres, dtype=object)
    tags = [names[row].tolist() for row in flags]  # one per movie
    first = np.where(flags.any(axis=1), names[flags.argmax(axis=1)], None)
    released = parse_times(raw["release_date"], path=file, field="release date", fmt="%d-%b-%Y",
                           first_line=1, required=False)  # fmt: skip
    return items_frame(
        {
            "item_id": id_strings(raw["item_id"]),
            "title": raw["title"],
            "category": pd.Series(first, dtype="str"),
            "tags": pd.Series(tags, dtype=object),
            "created_at": released,
            "attributes": json_objects(raw, ["imdb_url", "video_release_date"]),
        }
    )


def _users(file: Path) -> pd.DataFrame:
    raw = read_delimited(file, sep="|", names=USER_FIELDS, encoding="latin-1")
    age = parse_numbers(raw["age"], path=file, field="age", first_line=1, integer=True)
    profile = raw.assign(age=age.astype("Int64"))
    return users_frame(
        {"user_id": id_strings(raw["user_id"]), "attributes": json_objects(profile, USER_FIELDS[1:])}
    )
