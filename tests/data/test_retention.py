"""Retention (issue 24, finding 7): `fusionrec retention` deletes events, rejected rows and
exposures older than N days, from --days or fusionrec.toml's [store] retention_days."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from fusionrec.analytics.tables import ensure_analytics_tables, log_exposures
from fusionrec.cli import app as cli
from fusionrec.data.store import open_store

NOW = datetime.now(UTC)


def seed(url: str) -> None:
    """Two events, two exposures: one of each 40 days old, one a day old."""
    times = [NOW - timedelta(days=40), NOW - timedelta(days=1)]
    with open_store(url) as store:
        store.insert_events(
            pa.table(
                {
                    "event_id": ["old", "new"],
                    "user_id": ["u1", "u1"],
                    "item_id": ["i1", "i2"],
                    "event_type": ["view", "view"],
                    "timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
                }
            )
        )
        ensure_analytics_tables(store)
        log_exposures(
            store,
            [
                {"exposure_id": f"e{i}", "timestamp": t, "user_id": "u1", "items": ["i1"]}
                for i, t in enumerate(times)
            ],
        )


def remaining(url: str) -> dict[str, list]:
    with open_store(url) as store:
        return {
            "events": store.query_arrow("SELECT event_id FROM events").column(0).to_pylist(),
            "exposures": store.query_arrow("SELECT exposure_id FROM exposures").column(0).to_pylist(),
        }


def test_retention_deletes_what_is_older_than_the_days_given(store_url: str) -> None:
    seed(store_url)
    result = CliRunner().invoke(cli, ["retention", "--store", store_url, "--days", "30", "--json", "-"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout[result.stdout.index("{") :])
    assert record["deleted"]["events"] == 1 and record["deleted"]["exposures"] == 1
    assert remaining(store_url) == {"events": ["new"], "exposures": ["e1"]}


def test_retention_reads_the_project_file_and_needs_a_period(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(store_url)
    monkeypatch.chdir(tmp_path)
    unset = CliRunner().invoke(cli, ["retention", "--store", store_url])
    assert unset.exit_code == 2 and "error: no retention period" in unset.output
    (tmp_path / "fusionrec.toml").write_text(f'[store]\nurl = "{store_url}"\nretention_days = 7\n')
    result = CliRunner().invoke(cli, ["retention"])
    assert result.exit_code == 0, result.output
    assert remaining(store_url) == {"events": ["new"], "exposures": ["e1"]}
