"""Explanations of answered items, for shoppers (``reason``) and for the people tuning the shop.

Computed only when asked (``explain=true``, or ``GET /v1/recommendations/explain``) and only for
the items shown: the visitor's candidates are traced once more, exactly as the request scored
them (the same live history), and each item gets the reason of the part that drives its score
(`fusionrec.fusion.explanations`). Items that came from elsewhere are explained by where they came
from: live item-to-item neighbours (``session``) by the recent item that links to them most, the
fallbacks by popularity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fusionrec.data.schema import CATEGORY_SEPARATOR
from fusionrec.fusion.explanations import (
    Explanation,
    HistoryEvents,
    Reason,
    explain_items,
    explain_model_items,
    sentence,
)
from fusionrec.fusion.pipeline import MultiSourceRecommender
from fusionrec.serving.new_items import SOURCE as NEW_ITEM
from fusionrec.serving.registry import LoadedVersion
from fusionrec.serving.scored import SESSION
from fusionrec.serving.service import Service

SESSION_DECAY = 0.7  # as `ItemNeighbours.from_history`


def model_history(loaded: LoadedVersion, user: int, live: Sequence[int]) -> np.ndarray | None:
    """The history the model scores this visitor with (as `recommend._score_live`): training items
    then live ones when there are live events and the model takes a history; else None."""
    model = loaded.model.answering
    if live and (model.supports_history or model.scores_candidates):
        return np.concatenate([loaded.user_items(user).astype(np.int32), np.asarray(live, dtype=np.int32)])
    return None


def explain_answer(
    svc: Service,
    loaded: LoadedVersion,
    user: int,
    live: Sequence[int],
    bought: Sequence[int],
    items: Sequence[int],
    labels: Sequence[Sequence[str]] | None,
) -> list[dict[str, Any]]:
    """``{"reason": ..., "explanation": {...}}`` for each of ``items`` (indices), whose candidate
    sources are ``labels`` (None: explain every item by the model, proposed or not)."""
    model = loaded.model.answering
    history = model_history(loaded, user, live)
    fused = isinstance(model, MultiSourceRecommender)
    own = set(model.config.source_labels()) if fused else {model.name}
    every = labels is None
    if labels is None:
        labels = [sorted(own)] * len(items)
    by_model = [i for i, names in zip(items, labels, strict=True) if own & set(names)]
    if not fused:  # no event counts in a single model: the stored purchases name what was bought
        purchases = loaded.extras.get("purchases")
        if purchases is not None and 0 <= user < purchases.shape[0]:
            row = purchases.indices[purchases.indptr[user] : purchases.indptr[user + 1]]
            bought = [*bought, *row.tolist()]
    explained: dict[int, Explanation] = {}
    if by_model and (user >= 0 or history is not None):
        if fused:
            found = explain_items(model, user, by_model, history, bought=bought)
        else:
            found = explain_model_items(model, user, by_model, history, bought=bought)
        explained = {e.item: e for e in found}
    events = HistoryEvents(model.feature_context if fused else None, user, bought)
    out = []
    for item, names in zip(items, labels, strict=True):
        explanation = explained.get(int(item))
        if explanation is None or not (explanation.candidate or every):
            reason = _other_reason(loaded, live, int(item), names, events)
            explanation = Explanation(int(item), reason, candidate=False)
        out.append(render(svc, loaded, explanation))
    return out


def _other_reason(
    loaded: LoadedVersion, live: Sequence[int], item: int, labels: Sequence[str], events: HistoryEvents
) -> Reason:
    """Items the model did not propose: the live neighbours' item, or the fallback that gave them."""
    neighbours = loaded.extras.get("neighbours")
    if SESSION in labels and neighbours is not None and live:
        best, best_weight, weight = None, 0.0, 1.0
        for recent in reversed(live):  # the newest first, as the session candidates are built
            found, scores = neighbours.neighbours(recent)
            at = np.flatnonzero(np.asarray(found) == item)
            if len(at) and len(scores):
                link = weight * float(scores[at[0]]) / (float(np.max(scores)) or 1.0)
                if link > best_weight:
                    best, best_weight = int(recent), link
            weight *= SESSION_DECAY
        if best is not None:
            return Reason("history", SESSION, best, events(best))
    if "popular_in_category" in labels:
        return Reason("popular", "popular_in_category", window="")
    if "trending" in labels:
        return Reason("trending", "trending", window="now")
    return Reason("source", labels[0] if labels else None)


def render(svc: Service, loaded: LoadedVersion, explanation: Explanation) -> dict[str, Any]:
    """The reason as a sentence (item titles, short category names) and the trace behind it."""
    view = svc.catalogue.view(loaded.item_ids)
    ids = loaded.item_ids
    titles = svc.catalogue.frame["title"] if "title" in svc.catalogue.frame.columns else None

    def name(index: int) -> str:
        item_id = str(ids[index])
        title = titles.get(item_id) if titles is not None else None
        return title if isinstance(title, str) and title else item_id

    def category(index: int) -> str | None:
        path = view.category_of(index)
        return path.split(CATEGORY_SEPARATOR)[-1] if path else None

    reason = explanation.reason
    return {
        "reason": sentence(reason, explanation.item, name, category),
        "explanation": {
            "driver": reason.kind,
            "driven_by": reason.source,
            "named_item": None if reason.item is None else str(ids[reason.item]),
            "named_event": reason.event,
            "candidate": explanation.candidate,
            "rank": explanation.rank,
            "model_score": explanation.score,
            "source_ranks": {label: int(part["rank"]) for label, part in explanation.sources.items() if part},
            "features": [
                {
                    "name": f["name"],
                    "value": None
                    if f["value"] is None or not np.isfinite(f["value"])
                    else round(f["value"], 6),
                    "contribution": round(f["contribution"], 6),
                }
                for f in explanation.features
            ],
        },
    }


def explain_entries(
    svc: Service,
    loaded: LoadedVersion,
    user: int,
    live: Sequence[int],
    bought: Sequence[int],
    entries: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """An answer's ``entries`` with their reasons: the model's (`explain_answer`) for the items it
    knows, and for a new item put in by the live service (`serving.new_items`) what put it there."""
    known = [entry for entry in entries if NEW_ITEM not in entry["sources"]]
    reasons = explain_answer(
        svc,
        loaded,
        user,
        live,
        bought,
        [loaded.item_index[entry["item_id"]] for entry in known],
        [entry["sources"] for entry in known],
    )
    by_id = {entry["item_id"]: why for entry, why in zip(known, reasons, strict=True)}
    return [
        {**entry, **(by_id.get(entry["item_id"]) or _new_item_reason(svc, entry["item_id"]))}
        for entry in entries
    ]


def _new_item_reason(svc: Service, item_id: str) -> dict[str, Any]:
    """A new item is there for its category or content and its first events, not by the model."""
    path = (svc.catalogue.get(item_id) or {}).get("category")
    short = path.split(CATEGORY_SEPARATOR)[-1].strip() if path else None
    return {
        "reason": f"New in {short}" if short else "New in the shop",
        "explanation": {
            "driver": "new",
            "driven_by": NEW_ITEM,
            "named_item": None,
            "named_event": None,
            "candidate": True,
            "rank": None,
            "model_score": None,
            "source_ranks": {},
            "features": [],
        },
    }
