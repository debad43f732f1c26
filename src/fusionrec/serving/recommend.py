"""The recommendation path of one request: visitor, arm, version, candidates, rules, page.

Candidates come from the active model (a fused pipeline's own candidates and sources when it has
`score_candidates`, also behind ``auto``), scored with the visitor's live history when the model
takes one (fused pipelines always do), plus item-to-item neighbours of the last items (source
``session``) so an event changes the next answer without retraining. When the model cannot answer
(unknown visitor, failure) the fallback chain answers: popular in the category (asked for, or of
the current item), popular in the user's attribute segment (a registered user with attributes
but no training history, `fusionrec.serving.segments`), then trending; so it does for known users while their pre-scored lists are
computed at start-up (flagged ``degraded_causes: ["precomputing"]``), unless
``score_while_precomputing``. Items put into the catalogue since the model was trained (new
items, `serving.new_items`) are inserted by rank into the ranked list, the similar lists of their
neighbours and the popular lists, and a new item's page is seeded by its closest items in content.
With ``explain`` each item shown gets a reason and its trace (`serving.explain`), computed after
the page is chosen; `explain_one` explains any one item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusionrec.serving.business_rules import RuleRequest, among, apply_rules, repurchase_blocked
from fusionrec.serving.experiments import DEFAULT, assign
from fusionrec.serving.explain import explain_answer, explain_entries
from fusionrec.serving.new_items import SOURCE as NEW_ITEM
from fusionrec.serving.new_items import Filters, NewItemIndex, Pick, Visitor
from fusionrec.serving.online import VisitorState, session_key, user_key
from fusionrec.serving.precompute import Precomputed
from fusionrec.serving.preparation import PRECOMPUTING
from fusionrec.serving.redis_client import RedisUnavailableError
from fusionrec.serving.registry import LoadedVersion, RegistryError
from fusionrec.serving.scored import Provenance, Scored, merge, session_candidates, top
from fusionrec.serving.segments import LABEL as SEGMENT_LABEL
from fusionrec.serving.service import Service

logger = logging.getLogger(__name__)

CONTENT = "content"  # source label of items close in content to a new item


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
    device: str | None = None  # mobile, desktop ... (context of the request, like placement)
    channel: str | None = None  # web, app, email ...
    explain: bool = False  # add a reason and the trace behind it to each item


def recommend(svc: Service, q: RecQuery) -> dict[str, Any]:
    """The answer to one recommendation request (never raises for a failing model or Redis)."""
    answer = _recommend(svc, q, inline=False)
    assert answer is not None  # only an inline call stops short
    return answer


def recommend_inline(svc: Service, q: RecQuery) -> dict[str, Any] | None:
    """`recommend`'s answer when it needs neither the model nor Redis, else None (nothing done).

    For the event loop: a pre-scored list (a known user's, or a guest's with one live item: a
    first view, or a product page's context) or a cached answer (the visitor's own, or the one
    guests with no history share on a page: `_anonymous_slot`), with the rules, costs about a
    tenth of a millisecond, less than the worker-thread hop `recommend` needs when it scores.
    Scoring (other live histories, a page's context the model does not know, a device or channel
    the ranker reads, a list not pre-scored yet) and explanations return None, and so does
    everything while the live state, cache and counters are in Redis (a network read must not
    block the loop).
    """
    if svc.redis is not None or q.explain:
        return None
    return _recommend(svc, q, inline=True)


def _recommend(svc: Service, q: RecQuery, *, inline: bool) -> dict[str, Any] | None:
    """`recommend`; with ``inline`` None, before any side effect, where the model must score."""
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
    svc.new_item_counters.refresh()  # the revision below must be current (a worker thread here)
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
            q.device,
            q.channel,
            svc.new_item_counters.revision,  # a new item's first purchases show without waiting
            q.explain,
        )
    )
    version = loaded.version

    def expose(answer: dict[str, Any]) -> str | None:
        return _expose(svc, visitor, user_id, session_id, q, assignment, version, answer)

    cached = svc.cache.get(visitor, key) if not degraded else None
    if cached is not None:
        return _from_cache(cached, expose)
    state = VisitorState()
    if "online_state" not in degraded:
        try:
            state = svc.online.get(visitor)
        except RedisUnavailableError:
            degraded.append("online_state")
    fresh = svc.new_items(loaded)
    shared = _anonymous_slot(q, user_id, state, fresh) if not degraded else None
    hit = svc.shared_cache.get(shared, key) if shared is not None else None
    if hit is not None:
        return _from_cache(hit, expose)
    rules = svc.rules_for(assignment.rules)
    view = svc.catalogue.view(loaded.item_ids)
    n = q.offset + q.k
    user = loaded.user_index.get(user_id, -1) if user_id is not None and not svc.is_erased(user_id) else -1
    live = [loaded.item_index[i] for i in state.items if i in loaded.item_index]
    where = {"device": q.device, "channel": q.channel}
    context = loaded.item_index.get(q.context) if q.context else None
    if context is not None:
        live.append(context)
    # A page's context the model knows is one more live item: a guest on a product page with
    # no events yet has a pre-scored list, as one with a first view has.
    unknown_context = bool(q.context) and context is None
    if inline and (unknown_context or _request_context(loaded, where) or not _prescored(loaded, user, live)):
        return None  # the model scores: in a worker thread (`recommend`)
    wanted = max(svc.settings.candidates, 3 * n)
    alike: Scored | None = None
    if context is None and q.context and fresh is not None:
        # The page of a new item: its closest items in content are candidates, and the first of
        # them stand in for it as the visitor's live history.
        near, cosine = fresh.content_neighbours(q.context, 3 * n)
        if len(near):
            alike = Scored(near, cosine, Provenance(near, (CONTENT,)))
            live.extend(near[: svc.settings.realtime_items].tolist())
    scored = _score(svc, loaded, user, live, wanted, degraded, where)
    if alike is not None:
        scored = alike if scored is None else merge(alike, scored, 1.0)
    if scored is None:  # cold start or failure: the fallback chain
        category = q.category or _context_category(svc, view, context, q.context)
        if category is None and user_id is not None and not svc.is_erased(user_id):
            scored = _segment_fallback(loaded, user_id, wanted)
        if scored is None:
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
        scored.sources = scored.sources.merged(extra.sources)
    # New items go in by rank among the first n before the page is cut from them.
    shown = slice(q.offset, n) if fresh is None else slice(0, n)
    entries = [
        {"item_id": str(loaded.item_ids[i]), "score": round(s, 6), "sources": labels}
        for i, s, labels in zip(
            items[shown].tolist(), scores[shown].tolist(), scored.sources.labels(items[shown]), strict=True
        )
    ]
    if fresh is not None:
        category = q.category or _context_category(svc, view, context, q.context)
        picks = _new_item_picks(svc, fresh, loaded, view, q, visitor, user, state, live, rules, category, n)
        entries = insert_picks(entries, picks, n)[q.offset : n]
    answer = {
        "items": entries,
        "model_version": loaded.version,
        "variant": assignment.variant,
        "experiment": assignment.experiment,
        "degraded": bool(degraded),
        "fallback": scored.fallback,
        "cached": False,
    }
    if q.explain:
        bought = [loaded.item_index[i] for i in state.bought if i in loaded.item_index]
        try:
            answer["items"] = explain_entries(svc, loaded, user, live, bought, answer["items"])
        except Exception as error:  # the list itself is fine: answer it, flagged
            logger.error("explaining %s failed (%s)", loaded.version, type(error).__name__)
            degraded.append("explain")
    if degraded:
        answer["degraded_causes"] = degraded
        for cause in degraded:
            svc.metrics.degraded.labels(cause).inc()
    if scored.fallback is not None:
        svc.metrics.fallbacks.labels(scored.fallback).inc()
    if not degraded:  # a degraded answer is not kept: the next request tries again
        if shared is not None:
            svc.shared_cache.put(shared, key, answer)
        elif not svc.is_erased(user_id):  # a cache key would hold the erased id again
            svc.cache.put(visitor, key, answer)
    answer = dict(answer)
    answer["exposure_id"] = expose(answer)
    return answer


def _anonymous_slot(
    q: RecQuery, user_id: str | None, state: VisitorState, fresh: NewItemIndex | None
) -> str | None:
    """Where a guest's answer is shared with every other guest's (the shared cache's slot, by
    page), or None when it may differ by visitor.

    A guest with no history yet (no user, no live event: a product page's first view, a landing
    page) gets the answer of the request alone, so every such guest on that page gets the same
    one: it is scored once, then read, as popular lists are. New items' picks draw per visitor
    (`NewItemIndex.picks`), so a version with new items shares nothing.
    """
    if user_id is not None or not state.empty or fresh is not None:
        return None
    return f"guest|{q.context or ''}"


def _from_cache(cached: dict[str, Any], expose: Callable[[dict[str, Any]], str | None]) -> dict[str, Any]:
    """A cached answer, flagged, with this request's own exposure (``expose``)."""
    answer = dict(cached, cached=True)
    answer["exposure_id"] = expose(answer)
    return answer


def _new_item_picks(
    svc: Service,
    fresh: NewItemIndex,
    loaded: LoadedVersion,
    view: Any,
    q: RecQuery,
    visitor: str,
    user: int,
    state: VisitorState,
    live: list[int],
    rules: Any,
    focus: str | None,
    n: int,
) -> list[Pick]:
    """The new items this visitor's page gets, with their ranks (`NewItemIndex.picks`)."""
    trained = loaded.user_items(user).astype(np.int64)
    history = np.concatenate([trained, np.asarray(live, dtype=np.int64)])
    # The content neighbours of the live items, newest last; without any, of the training items
    # (which carry no order: the first 20, a bounded sample).
    recent = np.asarray(live[-fresh.tuning.recent :], dtype=np.int64) if live else trained[:20]
    blocked = {*q.exclude, *((q.context,) if q.context else ())}
    if rules.exclude_seen:
        blocked.update(state.seen)
    if rules.exclude_purchased:
        blocked.update(state.bought)
    filters = Filters(
        drop_hidden=rules.drop_hidden,
        drop_out_of_stock=rules.drop_out_of_stock,
        category=q.category,
        exclude_categories=rules.exclude_categories,
        min_price=q.min_price if q.min_price is not None else rules.min_price,
        max_price=q.max_price if q.max_price is not None else rules.max_price,
    )
    codes = view.category_code[history]
    who = Visitor(visitor, history, codes, view.categories, focus, frozenset(blocked), recent)
    return fresh.picks(who, svc.new_item_counters.evidence(fresh.ids), filters, n)


def insert_picks(entries: list[dict[str, Any]], picks: list[Pick], n: int) -> list[dict[str, Any]]:
    """``entries`` (ranked answer items) with the new items of ``picks`` put in at their ranks,
    the first ``n`` kept; a new item takes the score of the item it displaced."""
    out = list(entries)
    for pick in sorted(picks, key=lambda p: p.position):
        at = min(pick.position, len(out))
        score = out[at]["score"] if at < len(out) else (out[-1]["score"] if out else 0.0)
        out.insert(at, {"item_id": pick.item_id, "score": score, "sources": [NEW_ITEM]})
    return out[:n]


class UnknownIdError(LookupError):
    """An id an explanation cannot be given for (the message names it)."""


def explain_one(svc: Service, user_id: str | None, session_id: str | None, item_id: str) -> dict[str, Any]:
    """Why ``item_id`` ranks where it does for the visitor (recommended or not): the model version
    their recommendations come from, traced with their live history. `UnknownIdError` for an item
    the model does not know, or a visitor with neither training nor live history."""
    try:
        visitor = svc.online.resolve(user_id, session_id)
        state = svc.online.get(visitor)
    except RedisUnavailableError:
        visitor = user_key(user_id) if user_id is not None else session_key(str(session_id))
        state = VisitorState()
    resolved_user = visitor[2:] if visitor.startswith("u:") else None
    assignment = assign(svc.settings.experiments, resolved_user, session_id, None)
    try:
        loaded = svc.registry.get(assignment.model_version)
    except RegistryError:
        loaded = svc.registry.active
    if loaded is None:
        raise UnknownIdError("no model version is active")
    item = loaded.item_index.get(item_id)
    if item is None:
        raise UnknownIdError(f"item_id {item_id!r} is not known to model version {loaded.version}")
    erased = svc.is_erased(resolved_user)
    user = loaded.user_index.get(resolved_user, -1) if resolved_user is not None and not erased else -1
    live = [loaded.item_index[i] for i in state.items if i in loaded.item_index]
    if user < 0 and not live:
        who = f"user_id {user_id!r}" if user_id is not None else f"session_id {session_id!r}"
        raise UnknownIdError(f"{who} has no history to explain (unknown to model version {loaded.version})")
    bought = [loaded.item_index[i] for i in state.bought if i in loaded.item_index]
    explained = explain_answer(svc, loaded, user, live, bought, [item], None)[0]
    return {
        "user_id": user_id,
        "session_id": session_id,
        "item_id": item_id,
        "model_version": loaded.version,
        "sources": list(explained["explanation"]["source_ranks"]),
        **explained,
    }


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


def _prescored(loaded: LoadedVersion, user: int, live: list[int]) -> bool:
    """Whether the visitor's answer is pre-scored in ``loaded`` (what `_score` answers with when
    the request names no context the ranker reads): a known user with no live history, or a
    guest with one live item (`_guest_lists`). Checked without building the list, which `_score`
    then takes."""
    if live:
        guests = _guest_lists(loaded, user, live)
        return guests is not None and guests.has(live[0])
    precomputed = loaded.extras.get("precomputed")
    return user >= 0 and precomputed is not None and precomputed.has(user)


def _guest_lists(loaded: LoadedVersion, user: int, live: list[int]) -> Precomputed | None:
    """The one-item guests' lists where they answer this visitor (no training history and one
    live item: a guest's first view, a product page's context), indexed by that item; else None."""
    if user >= 0 or len(live) != 1:
        return None
    return loaded.extras.get("precomputed_guests")


def _score(
    svc: Service,
    loaded: LoadedVersion,
    user: int,
    live: list[int],
    wanted: int,
    degraded: list[str],
    where: dict[str, str | None] | None = None,
) -> Scored | None:
    """Model candidates (with live history) merged with live item-to-item candidates; None if none.
    ``where``: the request's device and channel, which a ranker that learned from them reads (the
    pre-scored lists know neither, so such a request is scored now)."""
    name = loaded.model.name
    personal: Scored | None = None
    context = _request_context(loaded, where)
    precomputed = loaded.extras.get("precomputed") if context is None else None
    if (
        precomputed is None
        and not live
        and user >= 0
        and PRECOMPUTING in loaded.extras
        and not svc.settings.score_while_precomputing
    ):
        degraded.append(PRECOMPUTING)  # flagged and not cached: the list is there moments later
        return None
    try:
        hit = precomputed.get(user) if precomputed is not None and not live else None
        guests = _guest_lists(loaded, user, live) if hit is None and context is None else None
        if guests is not None:
            hit = guests.get(live[0])
            if hit is not None and guests.with_session:
                return Scored(*hit)  # the live item's neighbours are merged in already
        # No live events since training, or a guest's one item: the batch-scored list; otherwise
        # score now.
        personal = Scored(*hit) if hit is not None else _score_live(loaded, user, live, wanted, context)
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
        session = session_candidates(neighbours, live[-svc.settings.realtime_items :])
    if personal is None:
        return session
    if session is None:
        return personal
    return merge(personal, session, weight)


def _request_context(loaded: LoadedVersion, where: dict[str, str | None] | None) -> dict[str, str] | None:
    """The request's values of the context columns the model's ranker reads, or None (none named,
    or a model that reads none)."""
    columns = getattr(loaded.model.answering, "context_columns", ())
    named = {c: v for c, v in (where or {}).items() if c in columns and v is not None}
    return named or None


def _score_live(
    loaded: LoadedVersion, user: int, live: list[int], wanted: int, context: dict[str, str] | None = None
) -> Scored | None:
    """Score one visitor now: with the live history when the model takes one, else by user index.

    A fused pipeline (`scores_candidates`, also when ``auto`` chose it) takes the history whatever
    its sources: those that score histories re-score with it, the others answer for the user
    index, and the ranker's session features (last and recent items) come from it; only the
    sources' candidates are ranked. A guest's history is their live events alone.
    """
    model = loaded.model.answering
    history = None
    if live and (model.supports_history or model.scores_candidates):
        live_items = np.asarray(live, dtype=np.int32)
        history = np.concatenate([loaded.user_items(user).astype(np.int32), live_items])
    if model.scores_candidates:
        if user < 0 and history is None:
            return None
        candidates, values = model.score_candidates(  # type: ignore[attr-defined]
            np.array([user], dtype=np.int64), [history] if history is not None else None, context
        )
        items = candidates.item.astype(np.int64)
        sources = Provenance(items, candidates.sources, candidates.proposed())
        return Scored(items, np.asarray(values, dtype=np.float64), sources)
    if history is not None:
        scores = model.score_histories([history])[0]
    elif user >= 0 and model.known_users(np.array([user]))[0]:
        scores = model.score(np.array([user]))[0]
    else:
        return None
    best = top(scores, wanted)
    return Scored(best, scores[best].astype(np.float64), Provenance(best, (model.name,)))


def _context_category(svc: Service, view: Any, context: int | None, context_id: str | None) -> str | None:
    """The category of the current item: from the model's items, else from the catalogue (an item
    added since training, e.g. by PUT /v1/items/{id}, whose page still deserves its category)."""
    if context is not None:
        return view.category_of(context)
    if context_id is None:
        return None
    category = (svc.catalogue.get(context_id) or {}).get("category")
    return category if isinstance(category, str) and category else None


def _fallback(loaded: LoadedVersion, view: Any, category: str | None, wanted: int) -> Scored:
    """Popular in ``category`` when it has items, else trending over the whole catalogue."""
    trending = loaded.extras["trending"]
    if category:
        mask = view.category_mask(category)
        if mask.any():
            best = top(np.where(mask, trending, -np.inf), wanted)
            label = "popular_in_category"
            return Scored(best, trending[best], Provenance(best, (label,)), label)
    best = top(trending, wanted)
    return Scored(best, trending[best], Provenance(best, ("trending",)), "trending")


def _segment_fallback(loaded: LoadedVersion, user_id: str, wanted: int) -> Scored | None:
    """Popular among the users who share a history-less user's attributes; None when the user
    has no attributes in an informative segment (the other fallbacks answer then)."""
    segments = loaded.extras.get("segments")
    scores = segments.scores(user_id) if segments is not None else None
    if scores is None:
        return None
    best = top(scores, wanted)
    return Scored(best, scores[best].astype(np.float64), Provenance(best, (SEGMENT_LABEL,)), SEGMENT_LABEL)


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
    """Items this answer must not contain: excluded, seen (by policy), bought within their window.

    Unsorted and possibly repeated (`among` takes any order): no set operations per request.
    """
    index = loaded.item_index
    parts = [np.fromiter((index[i] for i in q.exclude if i in index), dtype=np.int64)]
    if context is not None:
        parts.append(np.array([context], dtype=np.int64))
    bought_items = [index[i] for i in state.bought if i in index]
    bought_times = [state.bought[i] for i in state.bought if i in index]
    purchases = loaded.extras.get("purchases")
    if purchases is not None and 0 <= user < purchases.shape[0]:
        start, end = purchases.indptr[user], purchases.indptr[user + 1]  # the CSR row, sliced
        bought = np.concatenate([np.asarray(bought_items, dtype=np.int64), purchases.indices[start:end]])
        bought_at = np.concatenate([np.asarray(bought_times, dtype=np.float64), purchases.data[start:end]])
    else:
        bought = np.asarray(bought_items, dtype=np.int64)
        bought_at = np.asarray(bought_times, dtype=np.float64)
    still = repurchase_blocked(bought, bought_at, view, rules, time.time())
    parts.append(still)
    if rules.exclude_seen:
        live_seen = [index[i] for i in state.seen if i in index]
        seen = np.concatenate([loaded.user_items(user), np.asarray(live_seen, dtype=np.int64)])
        if rules.exclude_purchased and len(still) < len(bought):
            # A purchase whose repurchase window has passed is recommendable again, seen or not.
            released = bought[~among(bought, still)]
            seen = seen[~among(seen, released)]
        parts.append(seen)
    return np.concatenate(parts).astype(np.int64, copy=False)


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


def cached_popular(svc: Service, category: str | None, k: int) -> dict[str, Any] | None:
    """The cached answer of `popular`, or None (cheap enough for the event loop: a dict lookup)."""
    loaded = svc.registry.active
    if loaded is None:
        return None
    return svc.shared_cache.get("popular", _popular_key(svc, loaded, category, k))


def _popular_key(svc: Service, loaded: LoadedVersion, category: str | None, k: int) -> str:
    return f"{loaded.version}|{svc.catalogue.revision}|{svc.new_item_counters.revision}|{category}|{k}"


def popular(svc: Service, category: str | None, k: int) -> dict[str, Any]:
    """Trending items (within ``category``), hidden and out-of-stock ones dropped; cached."""
    loaded = svc.registry.active
    if loaded is None:
        return {"items": [], "model_version": None, "degraded": True, "fallback": "none"}
    svc.new_item_counters.refresh()  # `cached_popular` (on the event loop) reads no Redis
    key = _popular_key(svc, loaded, category, k)
    hit = svc.shared_cache.get("popular", key)
    if hit is not None:
        return hit
    view = svc.catalogue.view(loaded.item_ids)
    scored = _fallback(loaded, view, category, max(3 * k, 50))
    if category and scored.fallback != "popular_in_category":
        scored = Scored(np.zeros(0, dtype=np.int64), np.zeros(0), Provenance.empty(), "popular_in_category")
    items, scores = apply_rules(
        scored.items,
        scored.scores,
        view,
        svc.settings.rules.model_copy(update={"pins": []}),
        RuleRequest(n=k, category=category),
    )
    entries = [
        {"item_id": str(loaded.item_ids[i]), "score": round(float(s), 6), "sources": ["trending"]}
        for i, s in zip(items.tolist(), scores.tolist(), strict=True)
    ]
    fresh = svc.new_items(loaded)
    if fresh is not None:  # new items rise into the popular lists with their first events
        rules = svc.settings.rules
        filters = Filters(
            drop_hidden=rules.drop_hidden,
            drop_out_of_stock=rules.drop_out_of_stock,
            category=category,
            exclude_categories=rules.exclude_categories,
            min_price=rules.min_price,
            max_price=rules.max_price,
        )
        picks = fresh.popular(svc.new_item_counters.evidence(fresh.ids), filters, k)
        entries = insert_picks(entries, picks, k)
    answer = {
        "items": entries,
        "model_version": loaded.version,
        "degraded": False,
        "fallback": None,
    }
    svc.shared_cache.put("popular", key, answer)
    return answer


def cached_related(svc: Service, item_id: str, k: int, kind: str) -> dict[str, Any] | None:
    """The cached answer of `related`, or None (a dict lookup: cheap enough for the event loop)."""
    loaded = svc.registry.active
    if loaded is None:
        return None
    hit = svc.shared_cache.get(f"{kind}|{item_id}", _related_key(svc, loaded, k))
    if hit is not None and hit["fallback"] is not None:
        svc.metrics.fallbacks.labels(hit["fallback"]).inc()
    return hit


def related_inline(svc: Service, item_id: str, k: int, kind: str) -> dict[str, Any] | None:
    """`related`'s answer when it is cheap enough for the event loop, else None (nothing done):
    the cached answer, or a known item's when its neighbours are cheap (`ItemNeighbours.cheap`)
    and nothing is read from Redis (the new items' counters live there then)."""
    hit = cached_related(svc, item_id, k, kind)
    if hit is not None or svc.redis is not None:
        return hit
    loaded = svc.registry.active
    index = loaded.item_index.get(item_id) if loaded is not None else None
    if index is None:
        return None
    provider = loaded.extras["neighbours" if kind == "similar" else "bought_together"]
    if not provider.cheap(index) or (kind != "similar" and not loaded.extras["neighbours"].cheap(index)):
        return None  # a bought-together list may fall back to the similar items
    return related(svc, item_id, k, kind)


def _related_key(svc: Service, loaded: LoadedVersion, k: int) -> str:
    # The cache's LRU is over its first key (one per item here), its second holds a few variants.
    return f"{loaded.version}|{svc.catalogue.revision}|{k}"


def related(svc: Service, item_id: str, k: int, kind: str) -> dict[str, Any] | None:
    """Similar or bought-together items of ``item_id``; None when the item is unknown everywhere.

    Answers are cached (shared by all visitors; the key carries the version and the catalogue
    revision, and a new trending list clears the cache).
    """
    loaded = svc.registry.active
    if loaded is None:
        return {"item_id": item_id, "items": [], "model_version": None, "degraded": True, "fallback": "none"}
    answer = _related(svc, loaded, item_id, k, kind)
    if answer is not None:
        svc.shared_cache.put(f"{kind}|{item_id}", _related_key(svc, loaded, k), answer)
    return answer


def _related(svc: Service, loaded: LoadedVersion, item_id: str, k: int, kind: str) -> dict[str, Any] | None:
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
    fresh = svc.new_items(loaded)
    if index is None and fresh is not None and kind == "similar":
        items, scores = fresh.content_neighbours(item_id, 3 * k)  # a new item: its closest in content
        source = "content"
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
    entries = [
        {"item_id": str(loaded.item_ids[i]), "score": round(float(s), 6), "sources": [source]}
        for i, s in zip(items.tolist(), scores.tolist(), strict=True)
    ]
    if fresh is not None and kind == "similar":
        filters = Filters(drop_hidden=rules.drop_hidden, drop_out_of_stock=rules.drop_out_of_stock)
        if index is not None:  # new items close to this one join its list
            picks = fresh.similar_to_known(index, svc.new_item_counters.evidence(fresh.ids), filters, k)
        else:
            picks = fresh.similar_to_new(item_id, svc.new_item_counters.evidence(fresh.ids), filters, k)
        entries = insert_picks(entries, picks, k)
    return {
        "item_id": item_id,
        "items": entries,
        "model_version": loaded.version,
        "degraded": False,
        "fallback": fallback,
    }
