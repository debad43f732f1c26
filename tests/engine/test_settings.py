"""The [engine] settings: defaults, TOML, validation errors naming the key, Spark conf mapping."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from fusionrec.data.store import open_store
from fusionrec.engine import EngineError, EngineSettings, EngineSettingsError, get_engine
from fusionrec.engine.recommendations import read_recommendations, write_recommendations
from fusionrec.engine.spark_session import spark_conf


def test_defaults_are_duckdb_and_local_spark() -> None:
    settings = EngineSettings()
    assert settings.engine == "duckdb"
    assert settings.spark.master == "local[2]"


def test_toml_section_is_read(tmp_path: Path) -> None:
    path = tmp_path / "fusionrec.toml"
    path.write_text(
        '[store]\nurl = "duckdb:///x.duckdb"\n\n[engine]\nengine = "spark"\nevents = "hdfs:///lake/events"\n\n'
        '[engine.spark]\nmaster = "yarn"\nexecutor_memory = "16g"\nshuffle_partitions = 2000\n\n'
        '[engine.spark.conf]\n"spark.hadoop.fs.s3a.endpoint" = "http://minio:9000"\n'
    )
    settings = EngineSettings.from_toml(path)
    assert settings.engine == "spark" and settings.events == "hdfs:///lake/events"
    conf = spark_conf(settings.spark)
    assert conf["spark.executor.memory"] == "16g"
    assert conf["spark.sql.shuffle.partitions"] == "2000"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio:9000"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert settings.with_engine("duckdb").engine == "duckdb"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"engine": "flink"}, "engine.engine"),
        ({"spark": {"driver_memory": "lots"}}, "engine.spark.driver_memory"),
        ({"spark": {"shuffle_partitions": 0}}, "engine.spark.shuffle_partitions"),
        ({"sparkk": {}}, "engine.sparkk"),
    ],
)
def test_bad_settings_name_the_key(table: dict, key: str) -> None:
    with pytest.raises(EngineSettingsError, match=key.replace(".", r"\.")):
        EngineSettings.from_mapping(table)


def test_engine_without_input_says_what_to_set() -> None:
    with pytest.raises(EngineError, match="events"):
        get_engine(EngineSettings())


def test_engine_from_store_and_recommendations_table(tmp_path: Path, shop) -> None:
    events, items = shop
    with open_store(f"duckdb:///{tmp_path / 's.duckdb'}") as store:
        store.insert_events(events)
        store.upsert_items(items)
        with get_engine(EngineSettings(), store) as engine:
            pairs = engine.interactions()
            kpis = engine.kpis()
        assert pairs.num_rows > 0 and kpis["sessions"]["sessions"].iloc[0] > 0

        batch = pa.table(
            {
                "user_id": ["u1", "u1", "u2"],
                "rank": [1, 2, 1],
                "item_id": ["a", "b", "c"],
                "score": [2.0, 1.0, 3.0],
            }
        )
        assert write_recommendations(store, [batch], "m") == 3
        assert write_recommendations(store, [batch.slice(2)], "m") == 1  # replaces the model's lists
        assert read_recommendations(store, "m", "u1").num_rows == 0
        assert read_recommendations(store, "m", "u2")["item_id"].to_pylist() == ["c"]
        bad = pa.table({"user_id": ["u1", None], "rank": [1, 2], "item_id": ["a", "b"], "score": [1.0, 0.5]})
        with pytest.raises(ValueError, match="row 1 has a null user_id"):
            write_recommendations(store, [bad], "m")
        assert read_recommendations(store, "m", "u2").num_rows == 1  # the failed write changed nothing
