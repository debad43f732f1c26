"""Pipeline files and fusionrec.toml: validated on load, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusionrec.fusion.config import (
    PipelineConfigError,
    default_pipeline,
    load_pipeline,
    pipeline_to_toml,
)
from fusionrec.models.registry import create_model


def test_default_pipeline_is_packaged_and_valid() -> None:
    pipeline = default_pipeline()
    assert pipeline.model == "fusion" and [s.model for s in pipeline.sources] == [
        "ease",
        "rp3beta",
        "item_knn",
    ]
    model = create_model("fusion")  # the default sources come from the packaged file
    assert [s.model for s in model.config.sources] == ["ease", "rp3beta", "item_knn"]


def test_round_trip_through_toml(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(pipeline_to_toml(default_pipeline()))
    assert load_pipeline(path) == default_pipeline()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[pipeline]\nmodel = "fusion"\n[pipeline.config]\ntrain_user = 5\n', "pipeline.config.train_user"),
        ('[pipeline]\n[[pipeline.config.sources]]\nmodel = "nope"\n', "pipeline.config.sources.0.model"),
        ('[pipeline]\n[pipeline.config.ranker]\nkind = "svm"\n', "pipeline.config.ranker.kind"),
        ('[pipeline]\nmodel = "magic"\n', "pipeline.model"),
        ("[pipeline\n", "not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(PipelineConfigError, match=message.replace(".", r"\.")):
        load_pipeline(path)
