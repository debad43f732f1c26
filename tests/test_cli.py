"""The command line end to end: generate → ingest → stats → evaluate, and its error handling."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusionrec.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shop")
    result = runner.invoke(app, ["generate", "--events", "20000", "--seed", "3", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def test_generate_writes_the_three_tables(shop: Path) -> None:
    assert {p.name for p in shop.glob("*.parquet")} >= {"events.parquet", "items.parquet", "users.parquet"}


def test_ingest_is_idempotent_and_reports_json(shop: Path, tmp_path: Path) -> None:
    store = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    first = runner.invoke(app, ["ingest", str(shop), "--store", store, "--json", str(tmp_path / "a.json")])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["ingest", str(shop), "--store", store, "--json", str(tmp_path / "b.json")])
    assert second.exit_code == 0, second.output
    a, b = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert a["stored"] == 20_000 and a["duplicates"] == 0
    assert b["stored"] == 0 and b["duplicates"] == 20_000

    stats = runner.invoke(app, ["stats", "--store", store, "--json", "-"])
    assert stats.exit_code == 0, stats.output
    numbers = json.loads(stats.stdout[stats.stdout.index("{") :])
    assert numbers["events"] == 20_000
    assert sum(numbers["event_types"].values()) == 20_000
    assert 0 < numbers["density"] < 1


def test_ingest_public_format(shared_data: Path, tmp_path: Path) -> None:
    store = f"duckdb:///{tmp_path / 'otto.duckdb'}"
    path = shared_data / "event-samples" / "otto_train_20sessions.jsonl"
    result = runner.invoke(app, ["ingest", str(path), "--format", "otto", "--store", store, "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["stored"] + report["duplicates"] == 862


def test_bad_input_is_one_clear_line_and_nonzero_exit(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope.csv"), "--store", "duckdb:///:memory:"])
    assert missing.exit_code != 0 and "does not exist" in missing.output and "Traceback" not in missing.output

    bad_store = runner.invoke(app, ["stats", "--store", "mysql://x"])
    assert bad_store.exit_code != 0 and "unknown store URL" in bad_store.output

    bad_model = runner.invoke(app, ["evaluate", "--dataset", "synthetic", "--models", "nope"])
    assert bad_model.exit_code != 0 and "unknown model 'nope'" in bad_model.output

    bad_dataset = runner.invoke(app, ["evaluate", "--dataset", "imaginary", "--models", "most_popular"])
    assert bad_dataset.exit_code != 0 and "unknown dataset" in bad_dataset.output

    rejected = tmp_path / "bad.csv"
    rejected.write_text(
        "user_id,item_id,event_type,timestamp\n,i1,view,2026-01-01\nu1,i1,teleport,2026-01-01\n"
    )
    everything_bad = runner.invoke(
        app, ["ingest", str(rejected), "--store", f"duckdb:///{tmp_path / 'b.duckdb'}"]
    )
    assert everything_bad.exit_code != 0 and "quarantined" in everything_bad.output


def test_evaluate_format_path_writes_protocol_and_results(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--dataset",
            f"canonical:{shop}",
            "--models",
            "most_popular",
            "--k",
            "5,10",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "board.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["protocol"]["split"]["split"] == "temporal"
    assert payload["protocol"]["cutoffs"] == [5, 10]
    assert payload["protocol"]["ranking"] == "full ranking over all items"
    (row,) = payload["results"]
    assert row["model"] == "most_popular" and 0 <= row["metrics"]["NDCG@10"] <= 1
    assert "fit_seconds" in row
    assert (tmp_path / "board.png").stat().st_size > 1000


def test_evaluate_refit_is_recorded_in_the_protocol(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    args = ["evaluate", "--dataset", f"canonical:{shop}", "--models", "most_popular", "--json", str(out)]
    result = runner.invoke(app, [*args, "--refit"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["protocol"]["refit"].startswith(
        "every model fit on train + validation"
    )
    assert runner.invoke(app, args).exit_code == 0
    assert "refit" not in json.loads(out.read_text())["protocol"]


def test_demo_generates_ingests_and_trains_a_servable_version(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "demo",
            "--dir",
            str(tmp_path),
            "--events",
            "8000",
            "--no-serve",
            "--json",
            str(tmp_path / "d.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "d.json").read_text())
    assert payload["ingest"]["stored"] == 8000
    assert payload["train"]["version"] == "v0001"
    assert (tmp_path / "models").is_dir()
    assert 0 <= payload["train"]["evaluation"]["metrics"]["NDCG@20"] <= 1
    assert payload["train"]["trained_by"] == "fusionrec demo"


def test_report_includes_the_model_registry_leaderboard(tmp_path: Path) -> None:
    # an ample budget: the search confirms several candidates however loaded the machine is
    args = ["demo", "--dir", str(tmp_path), "--events", "6000", "--no-serve", "--budget", "5m"]
    demo = runner.invoke(app, args)
    assert demo.exit_code == 0, demo.output
    store = f"duckdb:///{(tmp_path / 'shop.duckdb').resolve()}"
    out = tmp_path / "report.html"
    result = runner.invoke(
        app, ["report", "--store", store, "--out", str(out), "--models", str(tmp_path / "models")]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    from fusionrec.versions import VersionManifest

    shipped = VersionManifest.read(tmp_path / "models" / "v0001").model  # what the search chose
    assert f"v0001 ({shipped})" in html and "model registry" in html
    assert "v0001 candidates (validation folds)" in html and "(shipped)" in html  # the search's leaderboard
    assert not re.search(r"<script[^>]+src=\"https?:", html)  # plotly.js is inlined, not fetched


# --- help ----------------------------------------------------------------------------------------


def _commands() -> dict[str, object]:
    import typer.main

    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_every_option_has_a_help_line_and_a_default() -> None:
    checked = 0
    for name, command in _commands().items():
        for param in command.params:  # type: ignore[attr-defined]
            if param.param_type_name != "option" or param.name == "help":
                continue
            checked += 1
            where = f"fusionrec {name} {param.opts[0]}"
            assert param.help, f"{where} has no help"
            if param.required or param.is_flag:
                continue
            assert param.show_default is not False, f"{where} hides its default"
            # None shows nothing: such an option must say in words what happens without it.
            assert param.default is not None or isinstance(param.show_default, str), (
                f"{where} shows no default"
            )
    assert checked > 50


def test_help_keeps_square_brackets_and_describes_the_demo() -> None:
    wide = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}
    top = runner.invoke(app, ["--help"], env=wide)
    assert top.exit_code == 0
    assert "train the fused model, serve it" in top.output and "[store] url" in top.output
    texts = {name: runner.invoke(app, [name, "--help"], env=wide).output for name in _commands()}
    assert "fusionrec.toml's [pipeline]" in texts["train"] and "[engine]" in texts["train"]
    assert "[ease] l2 = 500" in texts["evaluate"]
    assert "[serving] section" in texts["serve"]
    assert "generate (or read) a shop, ingest it, train the fused recommender, serve it" in texts["demo"]
    for name, text in texts.items():
        assert "fusionrec.toml's  " not in text and "\\[" not in text, name
        assert "[bold]" not in text, name


def test_importing_the_command_line_loads_no_heavy_library() -> None:
    import subprocess
    import sys

    probe = "import sys, fusionrec.cli; print(sorted(m for m in ('pandas', 'pyarrow', 'scipy', 'numpy', 'duckdb', 'fastapi') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout


def test_demo_with_the_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    """Two `fusionrec demo --no-serve --seed 0` processes: the same shop, model and numbers."""
    import subprocess
    import sys

    payloads = []
    for run in ("a", "b"):
        folder = tmp_path / run
        args = ["demo", "--no-serve", "--seed", "0", "--events", "8000", "--dir", str(folder)]
        args += ["--budget", "10m"]  # ample: a search the clock cuts short may choose otherwise
        done = subprocess.run(
            [sys.executable, "-m", "fusionrec.cli", *args, "--json", str(folder / "d.json")],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "baseline (most_popular)" in done.stderr  # the metrics table beside popularity
        payloads.append(json.loads((folder / "d.json").read_text())["train"]["evaluation"])
    first, second = payloads
    assert first["metrics"]["NDCG@20"] > first["baseline_metrics"]["NDCG@20"] > 0
    assert first["metrics"] == second["metrics"]
    assert first["baseline_metrics"] == second["baseline_metrics"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("45", 45.0), ("90s", 90.0), ("30m", 1800.0), ("1h30m", 5400.0), ("1.5h", 5400.0)]
)
def test_durations_read_as_a_person_writes_them(text: str, seconds: float) -> None:
    from fusionrec.cli.common import parse_duration

    assert parse_duration(text, "--budget") == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "0m", "10 minutes", "-5m"])
def test_durations_that_mean_nothing_are_refused(text: str) -> None:
    from fusionrec.cli.common import UserError, parse_duration

    with pytest.raises(UserError, match="--budget"):
        parse_duration(text, "--budget")
