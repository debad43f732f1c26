"""`fusionrec.toml` is one typed model: a typo anywhere ends the command in one line naming the
section and the key, and the good sections reach the parts that own them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import synthetic_store
from fusionrec.cli import app
from fusionrec.configuration import ProjectFileError, load_project

TYPOS = [
    ("[pipline]\n", "fusionrec.toml:pipline: unknown section (the sections are store, pipeline"),
    ('[store]\nurll = "duckdb:///x.duckdb"\n', "fusionrec.toml:store.urll: unknown key"),
    ('[pipeline]\nfallback = "no_such_model"\n', "fusionrec.toml:pipeline.fallback: unknown key"),
    ('[pipeline]\nrules = ["not-a-rule"]\n', "fusionrec.toml:pipeline.rules: unknown key"),
    ("[pipeline.config]\ntrain_user = 5\n", "fusionrec.toml:pipeline.config.train_user: unknown key"),
    (
        '[[pipeline.config.sources]]\nmodel = "ease"\nparams = { l22 = 500.0 }\n',
        "fusionrec.toml:pipeline.config.sources.0: params of ease: l22: unknown key",
    ),
    (
        "[pipeline.config.ranker]\nparams = { n_estimatorz = 10 }\n",
        "fusionrec.toml:pipeline.config.ranker: params: unknown LightGBM parameter(s) n_estimatorz",
    ),
    ('[engine.spark]\ndriver_memorie = "1g"\n', "fusionrec.toml:engine.spark.driver_memorie: unknown key"),
    ("[serving]\nportt = 8001\n", "fusionrec.toml:serving.portt: unknown key"),
    (
        "[serving.rules]\nexclude_purchase = true\n",
        "fusionrec.toml:serving.rules.exclude_purchase: unknown key",
    ),
    ("[rules]\nmin_prise = 3\n", "fusionrec.toml:rules.min_prise: unknown key"),
    (
        '[[experiments]]\nname = "x"\nsalt = "s"\narmz = []\n',
        "fusionrec.toml:experiments.0.armz: unknown key",
    ),
    ('[event_types]\nview = "a lot"\n', "fusionrec.toml:event_types.view:"),
]


@pytest.mark.parametrize(("body", "message"), TYPOS, ids=[t[1].split(":")[1] for t in TYPOS])
def test_a_typo_anywhere_is_one_line_naming_section_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fusionrec.toml").write_text(body)
    with pytest.raises(ProjectFileError) as raised:
        load_project()
    assert str(raised.value).startswith(message), str(raised.value)
    result = CliRunner().invoke(app, ["stats", "--store", "duckdb:///nowhere.duckdb"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.output


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--out", "models"],
        ["serve"],
        ["report", "--out", "r.html"],
        ["evaluate", "--dataset", "synthetic", "--models", "most_popular"],
        ["tune", "--space", "space.toml", "--out", "best.toml"],
    ],
)
def test_every_command_refuses_the_typo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fusionrec.toml").write_text("[pipeline.config.ranker]\nparams = { n_estimatorz = 10 }\n")
    (tmp_path / "space.toml").write_text('[k]\ntype = "categorical"\nchoices = [10.0]\n')
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "pipeline.config.ranker: params: unknown LightGBM parameter(s) n_estimatorz" in result.output
    assert "Traceback" not in result.output


def test_good_sections_reach_their_owners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = synthetic_store(tmp_path / "shop.duckdb", n_events=6_000, seed=2)
    (tmp_path / "fusionrec.toml").write_text(
        f'[store]\nurl = "{store}"\n'
        "[rules]\nmin_price = 1.0\n"
        "[serving]\nport = 8123\n"
        '[pipeline]\nmodel = "fusion"\n[pipeline.config]\ntrain_users = 300\n'
        '[[pipeline.config.sources]]\nmodel = "item_knn"\nn = 20\nparams = { neighbours = 20 }\n'
        "[pipeline.config.ranker]\nparams = { n_estimators = 10, num_leaves = 7, min_data_in_leaf = 10 }\n"
    )
    project = load_project()
    assert project.store.url == store and project.rules == {"min_price": 1.0}
    from fusionrec.serving.settings import load_settings

    settings = load_settings(Path("fusionrec.toml"))
    assert settings.port == 8123 and settings.rules.min_price == 1.0 and settings.store_url == store
    result = CliRunner().invoke(app, ["train", "--out", "models", "--valid-days", "0", "--json", "-"])
    assert result.exit_code == 0, result.output
    assert '"pipeline_origin": "fusionrec.toml:[pipeline]"' in result.output
    assert '"neighbours": 20' in result.output
