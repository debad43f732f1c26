"""From a data profile to a plan: how to validate, whether bought items stay eligible, and which
candidate sources (each with a small grid) are worth trying on this data.

Every rule reads the profile (`fusionrec.data.profile.DataProfile`), never a dataset's name. The
grids are the settings that did well across the benchmarks (docs/benchmarks.md): a few values
each, so that screening them all stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from fusionrec.data.profile import DataProfile
from fusionrec.extras import MissingExtraError
from fusionrec.models.registry import model_class
from fusionrec.tuning.folds import MAX_SCORED_USERS, FoldShape

REPEAT_SHARE = 0.3  # from this share of repeat purchases on, bought items stay eligible
REVISIT_SHARE = 0.1  # in session data, from this share of return visits on, seen items stay eligible
MIN_PURCHASES = 200  # fewer purchases say nothing about buying again (views repeat anyway)
RECENT_USER_SHARE = 0.1  # a recent window must see this share of users to validate by time
EASE_MAX_ITEMS = 25_000  # EASE's dense item x item Gram matrix: 2.5 GB of float32 at this size
SPECTRAL_MAX_ITEMS = 60_000  # ChebyCF: item x item products over the whole catalogue
SASREC_MIN_EVENTS = 5.0  # median history length from which a sequence model can learn order
SASREC_MIN_BUDGET_S = 600.0
# SASRec's full softmax scores every item at every position, most of its fit on a large catalogue:
# on amazon-beauty's 12k items one fold took 740 s for 30 epochs, NDCG@20 0.0705 on the search's
# first fold; 1,024 negatives drawn by popularity (log-q corrected), 20 epochs at a learning rate
# of 2e-3 on 2 threads took 87 s for 0.0658 (uniform negatives 0.0635, 2,048 0.0683 in 223 s).
SASREC_NEGATIVES = 1024
SAMPLED_SOFTMAX_MIN_ITEMS = 4 * SASREC_NEGATIVES
SASREC_EPOCHS = 20


@dataclass(frozen=True)
class Plan:
    """The data-driven settings of a search."""

    shape: FoldShape
    window_days: float
    exclude_seen: bool
    reasons: dict[str, str] = field(default_factory=dict)

    def holdout(self) -> dict[str, Any]:
        """The fused ranker's label window, cut the way validation cuts its folds."""
        # Several windows give the ranker more groups, each labelled by what followed its sources'
        # data; the search's shared sources make the extra windows cost features, not fits.
        # Labels from twice the validation window: more of each user's next items per group.
        if self.shape == "days":
            return {"mode": "days", "days": 2 * self.window_days, "windows": 3}
        if self.shape == "random":
            return {"mode": "random", "fraction": 0.2, "windows": 2}
        return {"mode": "last", "items": 1, "windows": 3}


@dataclass(frozen=True)
class SourceOption:
    """One candidate source: a registered model, the settings to try, its quota in a fusion."""

    model: str
    grid: tuple[dict[str, Any], ...] = ({},)
    n: int = 100
    min_score: float | None = None
    cost: float = 0.0  # `fit_cost` on the data at hand (relative seconds)

    def configs(self) -> list[dict[str, Any]]:
        return [dict(params) for params in self.grid]


def fit_cost(model: str, profile: DataProfile) -> float:
    """A rough cost in seconds of one validation fold of ``model`` on this data (fit and score),
    to screen the cheap sources first and skip those the time left cannot hold.

    Every fold scores at most MAX_SCORED_USERS users against every item; on top of that, what
    dominates each kind of model, scaled by one-fold trials of the automatic search on three
    datasets of 5k-41k items (the synthetic shop, amazon-beauty, gowalla; 2 shared cores): item-kNN
    and RP3beta grow with the items squared (1.1e-7 s a pair on all three), user-kNN with the
    users squared, EASE with the items cubed.
    """
    pairs = max(profile.interactions, 1)
    users, items = max(profile.users, 1), max(profile.items, 1)
    scored = float(min(users, MAX_SCORED_USERS))
    scoring = scored * items * 1e-7  # most_popular's whole trial: gowalla 33 s, amazon-beauty 8 s
    item_item = float(items) ** 2 * 1.1e-7
    user_user = float(users) ** 2 * 1.2e-7
    costs = {
        "item_knn": item_item,
        "rp3beta": item_item,
        "content_tfidf": item_item,
        "user_knn": user_user,
        "tifu_knn": user_user + profile.events * 1e-6,
        "ials": pairs * 5e-7 * 64,
        "covisitation": profile.events * 2e-5,  # amazon-beauty 12 s, dunnhumby 17 s
        # Measured on amazon-beauty (12k items, 22k users, 2 cores): EASE 21-63 s.
        "ease": float(items) ** 3 * 2e-11,
        "cheby_cf": pairs * 5e-5 + scored * items * 3e-7,
        # Per event and epoch on 2 threads, growing with the items each position is scored
        # against (amazon-beauty: 2.7e-5 s with 1,024 sampled negatives, 1.3e-4 with 12k items).
        "sasrec": profile.events * SASREC_EPOCHS * (1.8e-5 + 9e-9 * _sasrec_output_width(profile)),
    }
    return scoring + costs.get(model, profile.events * 1e-6)  # popularity, repeats, sessions: one pass


def _sasrec_output_width(profile: DataProfile) -> int:
    """The items each training position is scored against: the catalogue, or the sampled negatives."""
    return SASREC_NEGATIVES if profile.items >= SAMPLED_SOFTMAX_MIN_ITEMS else profile.items


def sasrec_settings(profile: DataProfile) -> dict[str, Any]:
    """SASRec's setting in the search: strong dropout for short histories, and on a catalogue of
    at least four times the negatives' count, the sampled softmax (about a fifth of the cost)."""
    settings: dict[str, Any] = {
        "epochs": SASREC_EPOCHS,
        "learning_rate": 2e-3,
        "dropout": 0.5,
        "attention_dropout": 0.5,
        "threads": 2,  # the search runs one fit at a time; fixed, so the same fit repeats
    }
    if _sasrec_output_width(profile) < profile.items:
        settings |= {
            "loss": "sampled_softmax",
            "n_negatives": SASREC_NEGATIVES,
            "negative_sampling": "popularity",
        }
    return settings


def plan_for(profile: DataProfile, *, window_days: float) -> Plan:
    """How to validate on this data, and whether customers' own past items stay eligible."""
    purchases = profile.event_mix.get("purchase", 0.0) * profile.events
    repeat = profile.repeat_purchase_share if purchases >= MIN_PURCHASES else None
    exclude_seen = repeat is None or repeat < REPEAT_SHARE
    revisits = profile.session_shaped and profile.repeat_event_share >= REVISIT_SHARE
    if repeat is None:
        said = f"{purchases:.0f} purchases, too few to tell whether customers buy again"
    else:
        said = f"{repeat:.0%} of purchases repeat an earlier one ({'<' if exclude_seen else '>='} {REPEAT_SHARE:.0%})"
    reasons = {
        "exclude_seen": f"{said}: "
        + ("a customer's past items are not proposed" if exclude_seen else "past items stay eligible")
    }
    if revisits and exclude_seen:
        exclude_seen = False
        reasons["exclude_seen"] = (
            f"{profile.repeat_event_share:.0%} of events return to an item seen earlier in the visit "
            f"(>= {REVISIT_SHARE:.0%}): the session's own items stay eligible"
        )
    if profile.session_shaped:
        shape: FoldShape = "session"
        reasons["validation"] = (
            f"anonymous short visits (median {profile.median_user_events:g} events within "
            f"{profile.median_user_span_days * 24 * 60:.0f} minutes): each session's last item from the ones before it"
        )
    elif profile.real_clock and profile.recent_user_share >= RECENT_USER_SHARE:
        shape = "days"
        reasons["validation"] = (
            f"{profile.recent_user_share:.0%} of users active in the last 7 days: the latest windows of time"
        )
    elif profile.ordered_histories:
        shape = "last"
        reasons["validation"] = (
            "histories are ordered but few users are active at the end of the data: each user's last item"
        )
    else:
        shape = "random"
        reasons["validation"] = (
            "neither time stamps nor order carry information (each user's items are listed by id): "
            "a random 20 % of each user's items"
        )
    return Plan(shape=shape, window_days=window_days, exclude_seen=exclude_seen, reasons=reasons)


def portfolio(
    profile: DataProfile, plan: Plan, *, budget_seconds: float
) -> tuple[list[SourceOption], dict[str, str]]:
    """The sources worth trying on this data, cheapest first (`fit_cost`), and why each other one
    is left out."""
    options: list[SourceOption] = []
    skipped: dict[str, str] = {}

    def offer(option: SourceOption, condition: bool, reason: str) -> None:
        if not condition:
            skipped[option.model] = reason
            return
        try:
            model_class(option.model)
        except MissingExtraError as error:
            skipped[option.model] = str(error)
            return
        if plan.shape == "session" and not model_class(option.model).supports_history:
            skipped[option.model] = "cannot score an anonymous session's live history"
            return
        options.append(option)

    knn = {"n": 100, "min_score": 0.0}
    offer(SourceOption("most_popular", n=50), True, "")
    offer(
        SourceOption("trending", n=50),
        plan.shape == "days",
        f"growth over recent weeks needs validation by windows of time, not per {plan.shape}",
    )
    offer(
        SourceOption("popular_in_category", n=100),
        profile.category_share >= 0.5,
        f"only {profile.category_share:.0%} of items have a category",
    )
    offer(
        SourceOption("repeat_purchase", ({}, {"half_life_days": 60.0})),
        not plan.exclude_seen,
        "past items are not kept eligible on this data (see the plan's exclude_seen)",
    )
    offer(SourceOption("session_knn", n=100), profile.real_clock, "no usable clock for sessions")
    # Items used together, and (ordered data) only what follows an item within its next few
    # events, the nearer the more (sequential rules): the cheap sequential signal; validation
    # picks. On the validation parts of four benchmarks the decayed 10-event span led the flat
    # 5-event one on three (docs/benchmarks.md).
    one_way = {"symmetric": False, "max_span_events": 10, "gap_decay": True}
    offer(
        SourceOption("covisitation", ({}, one_way), n=50, min_score=0.0),
        profile.ordered_histories,
        "histories carry no order",
    )
    offer(SourceOption("item_knn", ({"neighbours": 100}, {"neighbours": 400}), **knn), True, "")
    offer(
        SourceOption(
            "rp3beta",
            ({"alpha": 1.0, "beta": 0.5, "neighbours": 200}, {"alpha": 0.75, "beta": 0.3, "neighbours": 200}),
            **knn,
        ),
        True,
        "",
    )
    # Weighted and presence-only similarities are the same when every pair weighs the same.
    user_knn_grid = ({"neighbours": 100},) + (
        () if profile.uniform_weights else ({"neighbours": 100, "binary": False},)
    )
    offer(
        SourceOption("user_knn", user_knn_grid, **knn),
        profile.users <= 200_000,
        f"{profile.users:,} users: a user x user pass is too slow",
    )
    offer(
        SourceOption("content_tfidf", n=50),
        profile.text_share >= 0.5,
        f"only {profile.text_share:.0%} of items have text",
    )
    if profile.text_share >= 0.5:  # its sentence encoder would have to be downloaded: never at run time
        skipped["content_embedding"] = (
            "needs a sentence-transformers model on local disk; content_tfidf reads the text"
        )
    offer(
        SourceOption("tifu_knn", n=100),
        not plan.exclude_seen and profile.event_mix.get("purchase", 0.0) > 0,
        "past items are not kept eligible on this data (see the plan's exclude_seen)",
    )
    offer(
        SourceOption(
            "ials",
            (
                {"factors": 64, "alpha": 5.0, "regularization": 10.0},
                {"factors": 128, "alpha": 5.0, "regularization": 10.0},
            ),
            n=50,
        ),
        True,
        "",
    )
    offer(
        SourceOption("ease", ({"l2": 100.0}, {"l2": 500.0})),
        profile.items <= EASE_MAX_ITEMS,
        f"{profile.items:,} items: the item x item Gram matrix is too large (limit {EASE_MAX_ITEMS:,})",
    )
    offer(
        SourceOption("cheby_cf"),
        profile.items <= SPECTRAL_MAX_ITEMS,
        f"{profile.items:,} items: too many for a spectral filter (limit {SPECTRAL_MAX_ITEMS:,})",
    )
    offer(
        SourceOption("sasrec", (sasrec_settings(profile),)),
        profile.ordered_histories
        and profile.median_user_events >= SASREC_MIN_EVENTS
        and budget_seconds >= SASREC_MIN_BUDGET_S,
        f"needs ordered histories of at least {SASREC_MIN_EVENTS:g} events and a budget of "
        f"{SASREC_MIN_BUDGET_S / 60:g} minutes",
    )
    costed = [replace(option, cost=fit_cost(option.model, profile)) for option in options]
    return sorted(costed, key=lambda option: option.cost), skipped
