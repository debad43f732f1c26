"""Which sources proposed the items an answer shows (`fusionrec.serving.scored.Provenance`)."""

from __future__ import annotations

import numpy as np

from fusionrec.serving.scored import Provenance


def test_labels_name_the_proposing_sources_of_each_shown_item_in_source_order() -> None:
    rng = np.random.default_rng(0)
    labels = ("ease", "item_knn", "rp3beta", "covisitation")
    items = rng.permutation(50)[:30]
    proposed = rng.random((30, 4)) < 0.5
    provenance = Provenance(items, labels, proposed)
    shown = np.r_[items[::3], 999]  # 999 was proposed by none
    expected = [
        [label for label, hit in zip(labels, proposed[list(items).index(i)], strict=True) if hit]
        for i in shown[:-1]
    ]
    assert provenance.labels(shown) == [*expected, []]
    # Merged with a single-label list: that label follows, for its items only.
    extra = Provenance(np.array([items[0], 999]), ("trending",))
    merged = provenance.merged(extra).labels(shown)
    assert merged[0] == [*expected[0], "trending"] and merged[-1] == ["trending"]
    assert merged[1:-1] == expected[1:], "the other items' lists are untouched"
