"""Failures a user can cause, through the real `fusionrec` command in a subprocess.

Each ends in exit code 2 and one line on standard error that says what is wrong, never a traceback:
missing extras (simulated by an import blocker that makes the package unimportable, as in a core
install), unreachable servers, unsupported and mistyped store URLs. Also: ``[store] url`` of
``fusionrec.toml`` is what every store-reading command uses unless ``--store`` says otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port, synthetic_store

# A sitecustomize that makes the packages named in FUSIONREC_BLOCK unimportable, like an install
# without their extra.
BLOCKER = """
import os, sys
from importlib.abc import MetaPathFinder

BLOCKED = set(filter(None, os.environ.get("FUSIONREC_BLOCK", "").split(",")))


class Blocker(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""

XGBOOST_PIPELINE = """
[pipeline]
model = "fusion"
[pipeline.config]
train_users = 200
[[pipeline.config.sources]]
model = "most_popular"
n = 20
[pipeline.config.ranker]
kind = "{kind}"
"""


def fusionrec(
    *args: str, cwd: Path, block: str = "", timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m fusionrec.cli ARGS`` in ``cwd``; ``block`` names packages to make missing."""
    env = {k: v for k, v in os.environ.items() if k != "FUSIONREC_STORE"}
    if block:
        site = cwd / "blocker"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(BLOCKER)
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
        env["FUSIONREC_BLOCK"] = block
    return subprocess.run(
        [sys.executable, "-m", "fusionrec.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2, no traceback, and the last stderr line is the one ``error:`` line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def assert_only_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """As `assert_one_line_error`, and nothing else was printed on stderr."""
    line = assert_one_line_error(result, *needles)
    assert result.stderr.strip() == line, result.stderr[-2000:]
    return line


@pytest.fixture(scope="module")
def shop_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return synthetic_store(tmp_path_factory.mktemp("cli-errors") / "shop.duckdb", n_events=6_000, seed=2)


# --- missing extras -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["sasrec", "hybrid"])
def test_missing_torch_names_the_deep_extra(tmp_path: Path, model: str) -> None:
    result = fusionrec("evaluate", "--dataset", "synthetic", "--models", model, cwd=tmp_path, block="torch")
    assert_only_error(
        result, f"model '{model}' needs torch", "pip install 'fusionrec[deep]'", "make install-all"
    )


def test_missing_psycopg_names_the_postgres_extra(tmp_path: Path) -> None:
    result = fusionrec(
        "stats", "--store", "postgresql://postgres@127.0.0.1:5432/test", cwd=tmp_path, block="psycopg"
    )
    assert_only_error(result, "needs psycopg", "pip install 'fusionrec[postgres]'")


def test_missing_redis_names_the_redis_extra(tmp_path: Path, shop_store: str) -> None:
    result = fusionrec(
        "serve", "--store", shop_store, "--redis", "redis://127.0.0.1:6379/15", cwd=tmp_path, block="redis"
    )
    assert_only_error(result, "needs redis", "pip install 'fusionrec[redis]'")


def test_missing_pyspark_names_the_spark_extra(tmp_path: Path, shop_store: str) -> None:
    result = fusionrec(
        "report", "--store", shop_store, "--engine", "spark", "--out", "r.html", cwd=tmp_path, block="pyspark"
    )
    assert_only_error(result, "the Spark engine needs pyspark", "pip install 'fusionrec[spark]'")
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("kind", ["xgboost", "catboost"])
def test_missing_boosting_library_names_the_boost_extra(tmp_path: Path, shop_store: str, kind: str) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(XGBOOST_PIPELINE.format(kind=kind))
    result = fusionrec(
        "train", "--store", shop_store, "--out", "models", "--config", str(config), cwd=tmp_path, block=kind
    )
    assert_one_line_error(result, f"the {kind} ranker needs {kind}", "pip install 'fusionrec[boost]'")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


# --- unreachable servers --------------------------------------------------------------------------


def test_unreachable_postgres_names_the_url_and_the_error(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    result = fusionrec("stats", "--store", url, cwd=tmp_path)
    assert_only_error(result, f"cannot connect to PostgreSQL at {url}", "Connection refused")


def test_unreachable_redis_names_the_url_and_the_error(tmp_path: Path, shop_store: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = fusionrec("serve", "--store", shop_store, "--redis", url, cwd=tmp_path)
    assert_only_error(result, f"cannot reach Redis at {url}", "refused")
    stream = fusionrec(
        "consume", "--stream", f"{url.rsplit('/', 1)[0]}/events", "--store", shop_store, cwd=tmp_path
    )
    assert_only_error(stream, "cannot reach Redis at", "refused")


def test_unreachable_spark_master_names_the_url_and_the_error(tmp_path: Path, shop_store: str) -> None:
    master = f"spark://127.0.0.1:{free_port()}"
    (tmp_path / "fusionrec.toml").write_text(
        f'[engine]\nengine = "spark"\n[engine.spark]\nmaster = "{master}"\n'
    )
    result = fusionrec("report", "--store", shop_store, "--out", "r.html", cwd=tmp_path, timeout=60)
    assert_only_error(result, f"cannot reach the Spark master {master}", "refused")


# --- store URLs -----------------------------------------------------------------------------------


def test_unsupported_store_url_is_one_line(tmp_path: Path) -> None:
    for command in (["train", "--out", "models"], ["stats"], ["report"], ["serve"]):
        result = fusionrec(*command, "--store", "mysql://x", cwd=tmp_path)
        assert_only_error(result, "unknown store URL 'mysql://x'")


@pytest.mark.parametrize(
    "command", [["stats"], ["train", "--out", "models"], ["report", "--out", "r.html"], ["serve"]]
)
def test_a_mistyped_store_path_is_refused_not_created(tmp_path: Path, command: list[str]) -> None:
    result = fusionrec(*command, "--store", "duckdb:///shpo.duckdb", cwd=tmp_path)
    assert_only_error(result, "no fusionrec store at duckdb:///shpo.duckdb", "fusionrec ingest")
    assert not (tmp_path / "shpo.duckdb").exists()
    assert not (tmp_path / "models").exists() and not (tmp_path / "r.html").exists()


def test_a_postgres_schema_without_a_store_is_refused(tmp_path: Path, postgres_url: str) -> None:
    url = f"{postgres_url}?schema=fusionrec_never_created"
    result = fusionrec("stats", "--store", url, cwd=tmp_path)
    assert_only_error(result, f"no fusionrec store at {url}", "no fusionrec tables")


# --- [store] url of fusionrec.toml ----------------------------------------------------------------


def test_every_store_command_reads_the_project_store(tmp_path: Path, shop_store: str) -> None:
    (tmp_path / "fusionrec.toml").write_text(f'[store]\nurl = "{shop_store}"\n')
    stats = fusionrec("stats", "--json", "-", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert '"events": 6000' in stats.stdout
    report = fusionrec("report", "--out", "r.html", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "r.html").stat().st_size > 10_000
    train = fusionrec("train", "--out", "models", "--valid-days", "0", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    assert (tmp_path / "models" / "v0001").is_dir()
    assert not (tmp_path / "fusionrec.duckdb").exists()  # the default store was never touched

    # --store still wins over the file.
    elsewhere = fusionrec("stats", "--store", "duckdb:///other.duckdb", cwd=tmp_path)
    assert_only_error(elsewhere, "no fusionrec store at duckdb:///other.duckdb")


def test_serve_and_ingest_read_the_project_store(tmp_path: Path, shop_store: str) -> None:
    (tmp_path / "fusionrec.toml").write_text('[store]\nurl = "duckdb:///configured.duckdb"\n')
    serve = fusionrec("serve", "--port", str(free_port()), cwd=tmp_path)
    assert_only_error(serve, "no fusionrec store at duckdb:///configured.duckdb")
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,event_type,timestamp\nu1,i1,view,2026-01-01T10:00:00\n")
    ingest = fusionrec("ingest", str(events), cwd=tmp_path)
    assert ingest.returncode == 0, ingest.stderr
    assert (tmp_path / "configured.duckdb").is_file()


def test_dev_mode_refuses_to_listen_beyond_loopback(tmp_path: Path, shop_store: str) -> None:
    result = fusionrec("serve", "--store", shop_store, "--dev", "--host", "0.0.0.0", cwd=tmp_path)
    assert_only_error(result, "dev mode opens every scope to anyone", "127.0.0.1 only")
