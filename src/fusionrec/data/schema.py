"""The canonical data model: event types, and the columns of events, items and users.

Every reader maps its source onto these columns; the store, ingestion and the `Dataset`
only ever see the canonical form. Timestamps are UTC (``timestamp[us, tz=UTC]``), ids are
strings at the boundary (mapped to dense ``int32`` inside by a `Vocabulary`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

# --- event types -------------------------------------------------------------------------


class EventType(BaseModel):
    """One kind of behaviour: its weight in the interaction matrix and whether it is positive.

    Negative types (``positive=False``) subtract their weight, e.g. ``remove_from_cart``.
    A weight of 0 keeps the event in the store (analytics) but out of the matrix.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    weight: float = Field(ge=0.0)
    positive: bool = True

    @property
    def signed_weight(self) -> float:
        return self.weight if self.positive else -self.weight


CANONICAL_EVENT_TYPES: tuple[EventType, ...] = (
    EventType(name="view", weight=1.0),
    EventType(name="click", weight=2.0),
    EventType(name="search", weight=0.0),
    EventType(name="favorite", weight=3.0),
    EventType(name="add_to_cart", weight=4.0),
    EventType(name="remove_from_cart", weight=2.0, positive=False),
    EventType(name="purchase", weight=8.0),
    # Explicit ratings (MovieLens) and check-ins / reviews (Gowalla, Amazon) are interactions too.
    EventType(name="rating", weight=1.0),
)


class EventTypes(BaseModel):
    """The configured set of event types, with their weights (``[event_types]`` in TOML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: tuple[EventType, ...] = CANONICAL_EVENT_TYPES

    @field_validator("types")
    @classmethod
    def _unique(cls, types: tuple[EventType, ...]) -> tuple[EventType, ...]:
        names = [t.name for t in types]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"event types listed twice: {', '.join(duplicated)}")
        return types

    @classmethod
    def from_weights(cls, weights: Mapping[str, float]) -> EventTypes:
        """Override the weights of the canonical types (and add new ones, positive)."""
        by_name = {t.name: t for t in CANONICAL_EVENT_TYPES}
        for name, weight in weights.items():
            base = by_name.get(name)
            positive = base.positive if base is not None else True
            by_name[name] = EventType(name=name, weight=abs(weight), positive=positive and weight >= 0)
        return cls(types=tuple(by_name.values()))

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.types]

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def signed_weights(self) -> dict[str, float]:
        return {t.name: t.signed_weight for t in self.types}

    def code(self, name: str) -> int:
        """A stable small-integer code for an event type (its position in the list)."""
        return self.names.index(name)


# Common spellings in public datasets, mapped onto the canonical names. Readers use their own
# explicit maps; this one serves ingestion of "canonical" files that use a near-canonical name.
EVENT_TYPE_ALIASES: dict[str, str] = {
    "views": "view",
    "pageview": "view",
    "page_view": "view",
    "detail": "view",
    "clicks": "click",
    "searches": "search",
    "fav": "favorite",
    "favourite": "favorite",
    "wishlist": "favorite",
    "like": "favorite",
    "cart": "add_to_cart",
    "carts": "add_to_cart",
    "addtocart": "add_to_cart",
    "add-to-cart": "add_to_cart",
    "remove_from_cart": "remove_from_cart",
    "removefromcart": "remove_from_cart",
    "buy": "purchase",
    "order": "purchase",
    "orders": "purchase",
    "transaction": "purchase",
    "purchases": "purchase",
    "ratings": "rating",
}


def event_type_key(name: str) -> str:
    """An event type name lower-cased and trimmed, inner spaces as underscores."""
    return name.strip().lower().replace(" ", "_")


def normalise_event_type(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """Lower-case, trim, and map an alias onto its canonical name.

    ``aliases`` (a shop's ``[event_aliases]``, keys already passed through `event_type_key`) win
    over the built-in `EVENT_TYPE_ALIASES`, so a shop can also re-point a common spelling.
    """
    key = event_type_key(name)
    if aliases and key in aliases:
        return aliases[key]
    return EVENT_TYPE_ALIASES.get(key, key)


# --- columns -----------------------------------------------------------------------------

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
VECTORS_TYPE = pa.map_(pa.string(), pa.list_(pa.float32()))  # item vector name -> its values

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),  # null for anonymous visitors: session_id is then required
        pa.field("item_id", pa.string()),  # null only for searches
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("timestamp", UTC_TIMESTAMP, nullable=False),
        pa.field("session_id", pa.string()),
        pa.field("quantity", pa.float64()),
        pa.field("price", pa.float64()),
        pa.field("channel", pa.string()),
        pa.field("device", pa.string()),
        pa.field("query", pa.string()),
        pa.field("page", pa.string()),
        pa.field("is_bot", pa.bool_()),  # set by cleaning; training excludes flagged traffic
    ]
)
EVENT_COLUMNS: list[str] = EVENT_SCHEMA.names
# Columns a source may leave out; ingestion fills them with nulls (event_id is derived).
OPTIONAL_EVENT_COLUMNS: frozenset[str] = frozenset(
    {"event_id", "session_id", "quantity", "price", "channel", "device", "query", "page", "is_bot"}
)

ITEM_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("description", pa.string()),
        pa.field("category", pa.string()),  # a path, levels joined by " > ", e.g. "Food > Tea"
        pa.field("brand", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("in_stock", pa.bool_()),
        pa.field("hidden", pa.bool_()),
        pa.field("created_at", UTC_TIMESTAMP),
        pa.field("attributes", pa.string()),  # free-form JSON object
        # Named precomputed vectors, e.g. {"image_embedding": [0.1, ...]} (`fusionrec.data.item_vectors`).
        pa.field("vectors", VECTORS_TYPE),
    ]
)
ITEM_COLUMNS: list[str] = ITEM_SCHEMA.names

USER_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("attributes", pa.string()),  # free-form JSON object
    ]
)
USER_COLUMNS: list[str] = USER_SCHEMA.names

CATEGORY_SEPARATOR = " > "


def category_levels(path: str | None) -> list[str]:
    """Split a category path into its levels ("Food > Tea" -> ["Food", "Tea"])."""
    if not path:
        return []
    return [level.strip() for level in path.split(CATEGORY_SEPARATOR.strip()) if level.strip()]


def missing_columns(present: Iterable[str], schema: pa.Schema, optional: Iterable[str] = ()) -> list[str]:
    """Required columns of ``schema`` that ``present`` lacks."""
    have = set(present)
    skip = set(optional)
    return [name for name in schema.names if name not in have and name not in skip]
