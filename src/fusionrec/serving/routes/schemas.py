"""Request and response models: they document the API (OpenAPI at /docs) and validate input."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.responses import JSONResponse

from fusionrec.serving.item_fields import ITEM_FIELDS


class FastJSON(JSONResponse):
    """JSON via orjson (numpy-free dicts of plain values): cheaper on the hot path."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# The ``fields`` query parameter of every route that lists items (also `recommendations.Fields`).
FIELDS_DESCRIPTION = f"item fields to add to each item, comma-separated: {', '.join(ITEM_FIELDS)}"
FIELDS_EXAMPLES = ["title,price,image_url,url"]
ItemFieldsParam = Annotated[
    str | None, Field(max_length=256, description=FIELDS_DESCRIPTION, examples=FIELDS_EXAMPLES)
]


class RecommendationsQuery(BaseModel):
    """The query parameters of ``GET /v1/recommendations`` (validated in one call: `parse_query`)."""

    user_id: str | None = Field(None, min_length=1, max_length=256)
    session_id: str | None = Field(None, min_length=1, max_length=256, description="for guests")
    k: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=100_000, description="skip this many (pages never repeat)")
    category: str | None = Field(None, max_length=512, description="only items in this category path")
    exclude: list[str] = Field([], description="item ids to leave out (repeat or comma-separate)")
    placement: str | None = Field(None, max_length=64, description="home, product, cart, email ...")
    context: str | None = Field(None, max_length=256, description="the current item id")
    device: str | None = Field(None, min_length=1, max_length=64, description="mobile, desktop, tablet ...")
    channel: str | None = Field(None, min_length=1, max_length=64, description="web, app, email ...")
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    fields: ItemFieldsParam = None
    explain: bool = Field(
        False, description="add to each item a `reason` sentence and the `explanation` trace behind it"
    )


class RelatedQuery(BaseModel):
    """The ``k`` of similar and bought-together items (`parse_query`); other names are ignored,
    as they always were on these routes."""

    k: int = Field(10, ge=1, le=200)


class FieldsQuery(BaseModel):
    """The ``fields`` query parameter, read before the others (it was a dependency of its own)."""

    fields: ItemFieldsParam = None


class ItemPath(BaseModel):
    """The ``item_id`` path parameter of the item routes answered without FastAPI's parameters."""

    item_id: str = Field(min_length=1, max_length=256)


class FeaturePart(BaseModel):
    name: str = Field(description="a ranking feature (or a source label, for weighted fusions)")
    value: float | None = Field(None, description="its value for this item; null when missing")
    contribution: float = Field(description="what it adds to the item's score (SHAP value for tree rankers)")


class ItemExplanation(BaseModel):
    """The trace behind ``reason`` (with ``explain=true``)."""

    driver: str = Field(
        description="what the reason comes from: history, covisit, category, popular, trending, repeat, "
        "offer, price, new, source (a model without per-item terms: generic) or none (not proposed)"
    )
    driven_by: str | None = Field(None, description="the candidate source or feature behind it")
    named_item: str | None = Field(
        None, description="the visitor's item the reason names; removing it lowers this item's score"
    )
    named_event: str | None = Field(None, description="viewed, added to cart or bought (the named item)")
    candidate: bool = Field(description="false when no source proposed the item for this visitor")
    rank: int | None = Field(None, description="rank among the visitor's candidates (1 = best)")
    model_score: float | None = Field(None, description="the model's combined score of the item")
    source_ranks: dict[str, int] = Field(description="each proposing source's rank of the item")
    features: list[FeaturePart] = Field(description="the largest parts of the score, largest first")


class RecommendedItem(BaseModel):
    """One recommended item; the catalogue fields appear only when asked for with ``fields=``."""

    item_id: str
    score: float
    sources: list[str] = Field(description="the candidate sources that proposed the item")
    title: str | None = Field(None, description="with fields=title")
    description: str | None = Field(None, description="with fields=description")
    category: str | None = Field(None, description="with fields=category")
    brand: str | None = Field(None, description="with fields=brand")
    price: float | None = Field(None, description="with fields=price")
    in_stock: bool | None = Field(None, description="with fields=in_stock")
    image_url: str | None = Field(None, description="with fields=image_url (from the item's attributes)")
    url: str | None = Field(None, description="with fields=url (from the item's attributes)")
    reason: str | None = Field(
        None,
        description="with explain=true: a short sentence from the part that drives the item's score "
        "('Because you viewed X', 'Popular in Y this week', 'Often chosen together with Z ...')",
    )
    explanation: ItemExplanation | None = Field(
        None, description="with explain=true: the trace behind reason"
    )


class RecommendationsOut(BaseModel):
    items: list[RecommendedItem]
    model_version: str | None
    variant: str = Field(description="the A/B arm ('default' outside experiments)")
    experiment: str | None = None
    degraded: bool = Field(description="true when a part behind the answer failed (flagged, still answered)")
    degraded_causes: list[str] | None = None
    fallback: str | None = Field(
        description="the fallback source that answered (trending, popular_in_category)"
    )
    cached: bool = False
    exposure_id: str | None = Field(None, description="id of the logged exposure of this answer")


class ExplainOut(BaseModel):
    """Why one item ranks where it does for one visitor (recommended or not)."""

    user_id: str | None
    session_id: str | None
    item_id: str
    model_version: str
    sources: list[str] = Field(description="the candidate sources that proposed the item (empty: none)")
    reason: str
    explanation: ItemExplanation


class RelatedOut(BaseModel):
    item_id: str | None = None
    items: list[RecommendedItem]
    model_version: str | None
    degraded: bool = False
    fallback: str | None = None


class EventIn(BaseModel):
    """One event in the canonical schema (see docs/api.md); bad rows are quarantined, not rejected."""

    model_config = ConfigDict(extra="allow")

    event_id: str | None = Field(None, description="idempotency key; derived from the content when absent")
    user_id: str | None = None
    session_id: str | None = Field(None, description="required for anonymous visitors")
    item_id: str | None = None
    event_type: str = Field(
        description="view, click, search, favorite, add_to_cart, remove_from_cart, purchase, rating"
    )
    timestamp: str = Field(description="ISO 8601 time, UTC when no zone is given")
    quantity: float | None = None
    price: float | None = None
    channel: str | None = None
    device: str | None = None
    query: str | None = None
    page: str | None = None


class EventsAccepted(BaseModel):
    stored: int
    duplicates: int
    quarantined: int
    erased_skipped: int
    reasons: dict[str, int]
    examples: list[dict[str, Any]]


class IdentifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1, max_length=256)
    user_id: str = Field(min_length=1, max_length=256)


FiniteFloat = Annotated[float, Field(allow_inf_nan=False, ge=-3.4e38, le=3.4e38)]  # float32's range
VectorName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ItemIn(BaseModel):
    """Attributes to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    description: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = Field(None, ge=0)
    tags: list[str] | None = None
    in_stock: bool | None = None
    hidden: bool | None = None
    attributes: dict[str, Any] | None = None
    # Named precomputed vectors, e.g. {"image_embedding": [0.12, ...]}: finite numbers, at least
    # one each; a name the catalogue has must keep its length (checked by the service).
    vectors: dict[VectorName, Annotated[list[FiniteFloat], Field(min_length=1, max_length=65_536)]] | None = (
        None
    )


def event_body_schema() -> dict[str, Any]:
    """OpenAPI request body of POST /v1/events: one event or ``{"events": [...]}``."""
    event = EventIn.model_json_schema()
    event.pop("title", None)
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        event,
                        {
                            "type": "object",
                            "properties": {"events": {"type": "array", "items": event}},
                            "required": ["events"],
                        },
                    ]
                }
            }
        },
    }


class ExposureEventIn(BaseModel):
    """What a page did with a shown list: the visitor viewed, clicked or carted one of its items."""

    model_config = ConfigDict(extra="forbid")

    event_type: Literal["view", "click", "add_to_cart"]
    item_id: str = Field(min_length=1, max_length=256)
    user_id: str | None = Field(None, min_length=1, max_length=256)
    session_id: str | None = Field(None, min_length=1, max_length=256, description="for guests")
    event_id: str | None = Field(
        None, min_length=1, max_length=128, description="idempotency key (a resent event is stored once)"
    )
    quantity: float | None = Field(None, gt=0)
    price: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _visitor(self) -> ExposureEventIn:
        if self.user_id is None and self.session_id is None:
            raise ValueError("give user_id or session_id (the visitor the list was shown to)")
        return self


class ExposureEventAccepted(BaseModel):
    event_id: str
    exposure_id: str
    stored: int
    duplicates: int
    quarantined: int
    reasons: dict[str, int]
