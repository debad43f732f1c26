"""The recommendation path of one request: visitor, arm, version, candidates, rules, page.

Candidates come from the active model (a fused pipeline's own candidates and sources when it has
`score_candidates`), scored with the visitor's live history when the model supports histories,
plus item-to-item neighbours of the last items (source ``session``) so an event changes the next
answer without retraining. When the model cannot answer (unknown visitor, failure) the fallback
chain answers: popular in the category (asked for, or of the current item), then trending.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusionrec.serving.business_rules import RuleRequest, apply_rules, normalise, repurchase_blocked
from fusionrec.serving.experiments import DEFAULT, assign
from fusionrec.serving.online import VisitorState, session_key, user_key
from fusionrec.serving.redis_client import RedisUnavailableError
from fusionrec.serving.registry import LoadedVersion, RegistryError
from fusionrec.serving.service import Service

logger = logging.getLogger(__name__)

SESSION = "session"  # source label of live item-to-item candidates


@dataclass
class RecQuery:
    user_id: str | None = None
    session_id: str | None = None
    k: int = 10
    offset: int = 0
    category: str | None = None
    exclude: list[str] = field(default_factory=list)
    placement: str | None = None
    context: str | None = None  # the current item (product page, cart)
    min_price: float | None = None
    max_price: float | None = None


@dataclass
class Scored:
    items: np.ndarray  # int64 candidate indices
    scores: np.ndarray  # float
    sources: dict[int, list[str]]
    fallback: str | None = None


def recommend(svc: Service, q: RecQuery) -> dict[str, Any]:
    """The answer to one recommendation request (never raises for a failing model or Redis)."""
    degraded: list[str] = []
    try:
        visitor = svc.online.resolve(q.user_id, q.session_id)
    except RedisUnavailableError:
        visitor = user_key(q.user_id) if q.user_id is not None else session_key(str(q.session_id))
        degraded.append("online_state")
    user_id = visitor[2:] if visitor.startswith("u:") else None
    session_id = q.session_id
    assignment = assign(svc.settings.experiments, user_id, session_id, q.placement)
    try:
        loaded = svc.registry.get(assignment.model_version)
    except RegistryError:
        logger.warning(
            "arm %s: version %s unavailable; serving the active one",
            assignment.variant,
            assignment.model_version,
        )
        loaded, assignment = svc.registry.active, DEFAULT
        degraded.append("arm_version")
    if loaded is None:
        return _no_model(svc, q, assignment.variant)
    key = "|".join(
        str(x)
        for x in (
            loaded.version,
            svc.catalogue.revision,
            assignment.variant,
            q.k,
            q.offset,
            q.category,
            ",".join(q.exclude),
            q.placement,
            q.context,
            q.min_price,
            q.max_price,
        )
    )
    cached = svc.cache.get(visitor, key) if not degraded else None
    if cached is not None:
        answer = dict(cached, cached=True)
        answer["exposure_id"] = _expose(
            svc, visitor, user_id, session_id, q, assignment, loaded.version, answer
        )
        return answer
    state = VisitorState()
    if "online_state" not in degraded:
        try:
            state = svc.online.get(visitor)
        except RedisUnavailableError:
            degraded.append("online_state")
    rules = svc.rules_for(assignment.rules)
    view = svc.catalogue.view(loaded.item_ids)
    n = q.offset + q.k
    user = loaded.user_index.get(user_id, -1) if user_id is not None and not svc.is_erased(user_id) else -1
    live = [loaded.item_index[i] for i in state.items if i in loaded.item_index]
    context = loaded.item_index.get(q.context) if q.context else None
    if context is not None:
        live.append(context)
    wanted = max(svc.settings.candidates, 3 * n)
    scored = _score(svc, loaded, user, live, wanted, degraded)
    if scored is None:  # cold start or failure: the fallback chain
        category = q.category or (view.category_of(context) if context is not None else None)
        scored = _fallback(loaded, view, category, wanted)
    blocked = _blocked(svc, loaded, q, user, state, rules, view, context)
    request = RuleRequest(
        n=n,
        blocked=blocked,
        category=q.category,
        min_price=q.min_price,
        max_price=q.max_price,
        placement=q.placement,
        item_index=loaded.item_index,
    )
    items, scores = apply_rules(scored.items, scored.scores, view, rules, request)
    if len(items) < n and scored.fallback is None:  # rules emptied the model's list: top up
        extra = _fallback(loaded, view, None, wanted + n)
        more, more_scores = apply_rules(
            extra.items,
            extra.scores * 0.0,
            view,
            rules,
            RuleRequest(**{**request.__dict__, "blocked": np.r_[blocked, items]}),
        )
        items = np.r_[items, more][:n]
        scores = np.r_[scores, more_scores * 0.0][:n]
        for item in more.tolist():
            scored.sources.setdefault(item, extra.sources.get(item, ["trending"]))
    page_items, page_scores = items[q.offset : n], scores[q.offset : n]
    answer = {
        "items": [
            {
                "item_id": str(loaded.item_ids[i]),
                "score": round(float(s), 6),
                "sources": scored.sources.get(int(i), []),
            }
            for i, s in zip(page_items.tolist(), page_scores.tolist(), strict=True)
        ],
        "model_version": loaded.version,
        "variant": assignment.variant,
        "experiment": assignment.experiment,
        "degraded": bool(degraded),
        "fallback": scored.fallback,
        "cached": False,
    }
    if degraded:
        answer["degraded_causes"] = degraded
        for cause in degraded:
            svc.metrics.degraded.labels(cause).inc()
    if scored.fallback is not None:
        svc.metrics.fallbacks.labels(scored.fallback).inc()
    if not degraded and not svc.is_erased(user_id):  # a cache key would hold the erased id again
        svc.cache.put(visitor, key, answer)
    answer = dict(answer)
    answer["exposure_id"] = _expose(svc, visitor, user_id, session_id, q, assignment, loaded.version, answer)
    return answer


def _expose(
    svc: Service,
    visitor: str,
    user_id: str | None,
    session_id: str | None,
    q: RecQuery,
    assignment: Any,
    version: str,
    answer: dict[str, Any],
) -> str | None:
    items = [entry["item_id"] for entry in answer["items"]]
    if svc.is_erased(user_id):  # an erased user is answered, but nothing about them is written
        return None
    svc.remember_exposure(visitor, items)
    return svc.exposures.add(
        user_id=user_id,
        session_id=session_id,
        placement=q.placement,
        assignment=assignment,
        model_version=version,
        items=items,
    )


def _score(
    svc: Service, loaded: LoadedVersion, user: int, live: list[int], wanted: int, degraded: list[str]
) -> Scored | None:
    """Model candidates (with live history) merged with live item-to-item candidates; None if none."""
    model = loaded.model
    name = model.name
    personal: Scored | None = None
    precomputed = loaded.extras.get("precomputed")
    try:
        hit = precomputed.get(user) if precomputed is not None and not live else None
        # No live events since training: the batch-scored list; otherwise score now.
        personal = Scored(*hit) if hit is not None else _score_live(loaded, user, live, wanted)
    except Exception as error:  # a failing model must not fail the request: the fallback answers
        logger.error(
            "model %s (%s) failed (%s); answering from the fallback",
            loaded.version,
            name,
            type(error).__name__,
        )
        degraded.append("model")
    weight = svc.settings.realtime_weight
    session: Scored | None = None
    neighbours = loaded.extras.get("neighbours")
    if live and weight > 0 and neighbours is not None:
        items, scores = neighbours.from_history(live[-svc.settings.realtime_items :])
        if len(items):
            session = Scored(items, scores.astype(np.float64), {int(i): [SESSION] for i in items.tolist()})
    if personal is None:
        return session
    if session is None:
        return personal
    return _merge(personal, session, weight)


def _score_live(loaded: LoadedVersion, user: int, live: list[int], wanted: int) -> Scored | None:
    """Score one visitor now: with the live history when the model supports it, else by user index."""
    model = loaded.model
    history = None
    if live and model.supports_history:
        history = np.r_[loaded.user_items(user), np.asarray(live, dtype=np.int32)].astype(np.int32)
    if model.scores_candidates:
        if user < 0 and history is None:
            return None
        candidates, values = model.score_candidates(  # type: ignore[attr-defined]
            np.array([user], dtype=np.int64), [history] if history is not None else None
        )
        labels = np.asarray(candidates.sources)
        proposed = candidates.proposed()
        sources = {
            int(i): labels[p].tolist() for i, p in zip(candidates.item.tolist(), proposed, strict=True)
        }
        return Scored(candidates.item.astype(np.int64), np.asarray(values, dtype=np.float64), sources)
    if history is not None:
        scores = model.score_histories([history])[0]
    elif user >= 0 and model.known_users(np.array([user]))[0]:
        scores = model.score(np.array([user]))[0]
    else:
        return None
    top = _top(scores, wanted)
    return Scored(top, scores[top].astype(np.float64), {int(i): [model.name] for i in top.tolist()})


def _merge(personal: Scored, session: Scored, weight: float) -> Scored:
    """Union of both candidate sets; score = normalised model score + weight x normalised session score."""
    items = np.union1d(personal.items, session.items)
    score = np.zeros(len(items))
    score[np.searchsorted(items, personal.items)] += normalise(personal.scores)
    score[np.searchsorted(items, session.items)] += weight * normalise(session.scores)
    sources = dict(personal.sources)
    for item, labels in session.sources.items():
        sources[item] = [*sources.get(item, []), *labels]
    return Scored(items, score, sources)


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    n = min(n, len(scores))
    top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    top = top[np.isfinite(scores[top])]
    return top[np.lexsort((top, -scores[top]))].astype(np.int64)


def _fallback(loaded: LoadedVersion, view: Any, category: str | None, wanted: int) -> Scored:
    """Popular in ``category`` when it has items, else trending over the whole catalogue."""
    trending = loaded.extras["trending"]
    if category:
        mask = view.category_mask(category)
        if mask.any():
            top = _top(np.where(mask, trending, -np.inf), wanted)
            return Scored(
                top,
                trending[top],
                {int(i): ["popular_in_category"] for i in top.tolist()},
                "popular_in_category",
            )
    top = _top(trending, wanted)
    return Scored(top, trending[top], {int(i): ["trending"] for i in top.tolist()}, "trending")


def _blocked(
    svc: Service,
    loaded: LoadedVersion,
    q: RecQuery,
    user: int,
    state: VisitorState,
    rules: Any,
    view: Any,
    context: int | None,
) -> np.ndarray:
    """Items this answer must not contain: excluded, seen (by policy), bought within their window."""
    index = loaded.item_index
    parts = [np.asarray([index[i] for i in q.exclude if i in index], dtype=np.int64)]
    if context is not None:
        parts.append(np.array([context], dtype=np.int64))
    bought_items = [index[i] for i in state.bought if i in index]
    bought_times = [state.bought[i] for i in state.bought if i in index]
    purchases = loaded.extras.get("purchases")
    if purchases is not None and 0 <= user < purchases.shape[0]:
        row = purchases[user]
        bought_items += row.indices.tolist()
        bought_times += row.data.tolist()
    bought = np.asarray(bought_items, dtype=np.int64)
    still = repurchase_blocked(bought, np.asarray(bought_times), view, rules, time.time())
    parts.append(still)
    if rules.exclude_seen:
        seen = np.r_[
            loaded.user_items(user), np.asarray([index[i] for i in state.seen if i in index], dtype=np.int64)
        ]
        released = np.setdiff1d(bought, still) if rules.exclude_purchased else np.zeros(0, dtype=np.int64)
        parts.append(np.setdiff1d(seen.astype(np.int64), released))
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def _no_model(svc: Service, q: RecQuery, variant: str) -> dict[str, Any]:
    svc.metrics.fallbacks.labels("no_model").inc()
    svc.metrics.degraded.labels("no_model").inc()
    return {
        "items": [],
        "model_version": None,
        "variant": variant,
        "experiment": None,
        "degraded": True,
        "degraded_causes": ["no_model"],
        "fallback": "none",
        "cached": False,
        "exposure_id": None,
    }


def popular(svc: Service, category: str | None, k: int) -> dict[str, Any]:
    """Trending items (within ``category``), hidden and out-of-stock ones dropped; cached."""
    loaded = svc.registry.active
    if loaded is None:
        return {"items": [], "model_version": None, "degraded": True, "fallback": "none"}
    key = f"{loaded.version}|{svc.catalogue.revision}|{category}|{k}"
    hit = svc.shared_cache.get("popular", key)
    if hit is not None:
        return hit
    view = svc.catalogue.view(loaded.item_ids)
    scored = _fallback(loaded, view, category, max(3 * k, 50))
    if category and scored.fallback != "popular_in_category":
        scored = Scored(np.zeros(0, dtype=np.int64), np.zeros(0), {}, "popular_in_category")
    items, scores = apply_rules(
        scored.items,
        scored.scores,
        view,
        svc.settings.rules.model_copy(update={"pins": []}),
        RuleRequest(n=k, category=category),
    )
    answer = {
        "items": [
            {"item_id": str(loaded.item_ids[i]), "score": round(float(s), 6), "sources": ["trending"]}
            for i, s in zip(items.tolist(), scores.tolist(), strict=True)
        ],
        "model_version": loaded.version,
        "degraded": False,
        "fallback": None,
    }
    svc.shared_cache.put("popular", key, answer)
    return answer


def related(svc: Service, item_id: str, k: int, kind: str) -> dict[str, Any] | None:
    """Similar or bought-together items of ``item_id``; None when the item is unknown everywhere."""
    loaded = svc.registry.active
    if loaded is None:
        return {"item_id": item_id, "items": [], "model_version": None, "degraded": True, "fallback": "none"}
    view = svc.catalogue.view(loaded.item_ids)
    index = loaded.item_index.get(item_id)
    fallback = None
    items = np.zeros(0, dtype=np.int64)
    scores = np.zeros(0)
    source = "similar" if kind == "similar" else "bought_together"
    if index is not None:
        provider = loaded.extras["neighbours" if kind == "similar" else "bought_together"]
        items, scores = provider.neighbours(index)
        if not len(items) and kind == "bought_together":
            items, scores = loaded.extras["neighbours"].neighbours(index)
            fallback, source = "similar", "similar"
    elif item_id not in svc.catalogue:
        return None
    if not len(items):  # new or isolated item: popular items of its category
        category = (
            view.category_of(index)
            if index is not None
            else (svc.catalogue.get(item_id) or {}).get("category")
        )
        scored = _fallback(loaded, view, category, 3 * k)
        items, scores, fallback, source = scored.items, scored.scores, scored.fallback, scored.fallback
    blocked = np.array([index], dtype=np.int64) if index is not None else np.zeros(0, dtype=np.int64)
    rules = svc.settings.rules.model_copy(update={"pins": [], "boosts": [], "diversity": "none"})
    items, scores = apply_rules(
        np.asarray(items), np.asarray(scores), view, rules, RuleRequest(n=k, blocked=blocked)
    )
    if fallback is not None:
        svc.metrics.fallbacks.labels(fallback).inc()
    return {
        "item_id": item_id,
        "items": [
            {"item_id": str(loaded.item_ids[i]), "score": round(float(s), 6), "sources": [source]}
            for i, s in zip(items.tolist(), scores.tolist(), strict=True)
        ],
        "model_version": loaded.version,
        "degraded": False,
        "fallback": fallback,
    }
