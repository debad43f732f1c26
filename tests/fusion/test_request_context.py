"""Device and channel as ranking features: learned from the events' own context, only when it
matters, and read from the request at scoring time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset
from fusionrec.data.synthetic import generate_frames
from fusionrec.fusion.pipeline import FusionRecommender
from fusionrec.fusion.request_context import event_codes, fit_encoder, latest_codes, request_codes

N_ITEMS = 60  # items 0-29 are taken on the app, 30-59 on the web (when planted)


def _shop(planted: bool, seed: int = 3) -> Dataset:
    """Every user visits on both devices; with ``planted``, what they take depends on the device."""
    rng = np.random.default_rng(seed)
    rows = []
    clock = 0
    for user in range(300):
        for _ in range(12):
            device = "app" if rng.random() < 0.5 else "web"
            if planted:
                low = 0 if device == "app" else N_ITEMS // 2
                item = low + min(int(rng.zipf(1.6)) - 1, N_ITEMS // 2 - 1)
            else:
                item = min(int(rng.zipf(1.3)) - 1, N_ITEMS - 1)
            clock += 1
            rows.append((f"u{user}", f"i{item}", clock, device, "view"))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "device", "event_type"])
    events["timestamp"] = pd.to_datetime(events["timestamp"], unit="s", utc=True)
    return Dataset.from_frame(events)


def _fusion() -> FusionRecommender:
    return FusionRecommender(
        sources=[{"model": "most_popular", "n": 40}, {"model": "item_knn", "n": 40}],
        holdout={"mode": "last", "items": 1, "windows": 2},
        ranker={"kind": "lightgbm", "params": {"n_estimators": 60, "min_data_in_leaf": 5}},
        exclude_seen=False,
        seed=1,
    )


def test_the_device_is_a_feature_only_where_it_changes_what_is_taken() -> None:
    assert fit_encoder(_shop(planted=True)).names == ("device",)
    # Devices drawn independently of the items: nothing to learn, no feature.
    assert fit_encoder(_shop(planted=False)).names == ()


def test_codes_of_events_requests_and_label_windows() -> None:
    shop = _shop(planted=True)
    encoder = fit_encoder(shop)
    codes = event_codes(shop.event_context, encoder)[:, 0]
    app = encoder.values[0].index("app")
    assert ((codes == app) == (shop.event_context["device"] == "app").to_numpy()).all()
    assert request_codes({"device": "app"}, encoder).tolist() == [app]
    assert request_codes({"device": "tv"}, encoder).tolist() == [-1]  # not in the training data
    assert request_codes({"channel": "email"}, encoder).tolist() == [-1]
    latest = latest_codes(shop, encoder)[:, 0]
    last_event = np.full(shop.n_users, -1)
    last_event[shop.user_idx] = np.arange(shop.n_events)
    assert (latest == codes[last_event]).all()


def test_the_same_user_gets_the_items_of_the_device_asked_for() -> None:
    shop = _shop(planted=True)
    model = _fusion().fit(shop)
    assert model.context_columns == ("device",)
    assert "device_lift" in model.feature_names()
    users = np.arange(40, dtype=np.int64)

    def app_share(device: str | None) -> float:
        context = {"device": device} if device else None
        candidates, values = model.score_candidates(users, context=context)
        shares = []
        for row in range(len(users)):
            mine = candidates.row == row
            top = candidates.item[mine][np.argsort(-values[mine], kind="stable")[:10]]
            app_items = shop.items.index([f"i{i}" for i in range(N_ITEMS // 2)])
            shares.append(np.isin(top, app_items).mean())
        return float(np.mean(shares))

    on_app, on_web, unknown = app_share("app"), app_share("web"), app_share(None)
    assert on_app > 0.8 and on_web < 0.2, (on_app, on_web)
    assert on_web < unknown < on_app


def test_a_model_without_context_features_ignores_the_request_context() -> None:
    shop = _shop(planted=False)
    model = _fusion().fit(shop)
    assert model.context_columns == ()
    users = np.arange(5, dtype=np.int64)
    plain = model.score_candidates(users)[1]
    np.testing.assert_array_equal(plain, model.score_candidates(users, context={"device": "app"})[1])


def test_the_context_survives_save_and_load(tmp_path: Path) -> None:
    shop = _shop(planted=True)
    model = _fusion().fit(shop)
    loaded = FusionRecommender.load(model.save(tmp_path / "m"))
    users = np.arange(5, dtype=np.int64)
    for device in ("app", "web"):
        np.testing.assert_allclose(
            model.score_candidates(users, context={"device": device})[1],
            loaded.score_candidates(users, context={"device": device})[1],
            rtol=1e-6,
        )


def test_the_synthetic_shop_draws_devices_apart_from_taste() -> None:
    """Its visits' items share a category and a device: counted per event that looked like a
    device effect; counted per visit it is none."""
    events, items, _ = generate_frames(n_events=30_000, seed=7)
    assert fit_encoder(Dataset.from_frame(events, items)).names == ()
