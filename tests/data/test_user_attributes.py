"""User attributes: parsing, the bounded vocabulary, segment lifts and their shrinkage estimate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from attribute_data import OLD_ITEMS, YOUNG_ITEMS, planted_shop
from fusionrec.data.dataset import Dataset
from fusionrec.data.user_attributes import (
    OTHER,
    AttributeEncoder,
    SegmentLift,
    UserAttributeError,
    dataset_codes,
    dataset_encoder,
    informative_encoder,
    parse_attributes,
)


def test_parse_takes_json_text_dicts_and_nulls_and_names_the_bad_row() -> None:
    frame = parse_attributes(['{"age": "25-34", "kids": 2}', {"age": "65+"}, None, ""])
    assert frame["age"].tolist()[:2] == ["25-34", "65+"]
    assert frame["age"].isna().tolist() == [False, False, True, True]
    assert frame.loc[0, "kids"] == "2"  # numbers and their text are one segment
    with pytest.raises(UserAttributeError, match=r"users.attributes: row 1 is not JSON"):
        parse_attributes(['{"a": 1}', "{broken"])
    with pytest.raises(UserAttributeError, match=r"row 0 is a JSON list, not an object"):
        parse_attributes(["[1, 2]"])


def test_encoder_pools_rare_values_and_drops_keys_without_segments() -> None:
    rows = [{"age": "a", "id": f"x{i}"} for i in range(30)] + [{"age": "b", "id": f"y{i}"} for i in range(25)]
    rows += [{"age": "rare"}, {"id": "z"}]
    encoder = AttributeEncoder.fit([json.dumps(r) for r in rows], min_users=20)
    # "id" is unique per user: no value reaches 20 users, so it makes no segment at all
    assert encoder.names == ("age",)
    assert encoder.values == (("a", "b", OTHER),)
    codes = encoder.encode(['{"age": "a"}', '{"age": "b"}', '{"age": "rare"}', '{"age": "new"}', None])
    np.testing.assert_array_equal(codes[:, 0], [0, 1, 2, 2, -1])
    restored = AttributeEncoder.from_arrays(encoder.to_arrays("p_"), "p_")
    assert restored == encoder
    assert AttributeEncoder.from_arrays({}, "p_").n_attributes == 0


def test_segment_lift_finds_the_planted_attribute_and_ignores_the_noise() -> None:
    events, users = planted_shop()
    dataset = Dataset.from_frame(events, users=users)
    encoder = dataset_encoder(dataset.user_features)
    assert encoder.names == ("age", "region")
    codes = dataset_codes(dataset.user_features, encoder)
    segments = SegmentLift.build(codes, dataset.matrix(binary=True), encoder.sizes())
    m_age, m_region = segments.shrinkage
    assert np.isfinite(m_age)
    assert not np.isfinite(m_region) or m_region > 10 * m_age
    assert informative_encoder(dataset.user_features, dataset.matrix(binary=True)).names == ("age",)
    young = encoder.encode(['{"age": "young"}'])
    scores = segments.scores(young)[0]
    top = set(dataset.items.id(np.argsort(-scores)[:10]))
    assert top == set(YOUNG_ITEMS)
    # No attribute: global popularity, where the (more numerous) old users' items lead.
    plain = segments.scores(np.full((1, 2), -1, dtype=np.int32))[0]
    assert set(dataset.items.id(np.argsort(-plain)[:10])) == set(OLD_ITEMS)
    again = SegmentLift.from_arrays(segments.to_arrays("s_"), "s_")
    np.testing.assert_array_equal(again.scores(young), segments.scores(young))


def test_no_attributes_means_an_empty_encoder() -> None:
    events, _ = planted_shop()
    dataset = Dataset.from_frame(events)
    assert dataset_encoder(dataset.user_features).n_attributes == 0
    assert dataset_codes(dataset.user_features, dataset_encoder(dataset.user_features)).shape == (
        dataset.n_users,
        0,
    )


def test_segments_are_compared_with_the_users_who_report_the_attribute() -> None:
    # Users with attributes (a coin-flip "region") take y-items; as many users without any take
    # o-items. Against everybody every region segment would look different (it only has y-item
    # people); against the users who report a region, the regions do not differ.
    events, _ = planted_shop(n_young=120, n_old=120)
    rng = np.random.default_rng(1)
    users = [
        (f"u{u}", json.dumps({"region": "north" if rng.random() < 0.5 else "south"})) for u in range(120)
    ]
    frame_users = pd.DataFrame(users, columns=["user_id", "attributes"])
    dataset = Dataset.from_frame(events, users=frame_users)
    encoder = dataset_encoder(dataset.user_features)
    assert encoder.names == ("region",)
    codes = dataset_codes(dataset.user_features, encoder)
    segments = SegmentLift.build(codes, dataset.matrix(binary=True), encoder.sizes())
    assert not np.isfinite(segments.shrinkage[0]) or segments.shrinkage[0] > 1000
