"""The `fusionrec` command line: one Typer app, commands grouped by job in this package's modules.

    data.py      generate, ingest, stats
    train.py     train, tune
    evaluate.py  evaluate
    serve.py     serve, consume
    report.py    report, campaigns
    users.py     erase, export, retention
    demo.py      demo (generate, ingest, train, serve)

Every command that reports takes ``--json PATH`` (``-`` for standard output) and writes one JSON
object there; progress and logs go to standard error. Bad user input ends in one clear line and
exit code 2, never a traceback (`fusionrec.cli.common.user_errors`). Modules import only Typer,
Rich and the standard library at the top, so ``fusionrec --help`` loads no heavy library.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.logging import RichHandler

from fusionrec.cli import data, demo, evaluate, report, serve, train, users
from fusionrec.cli.common import err

__all__ = ["app"]

app = typer.Typer(
    name="fusionrec",
    help=(
        "Recommender system for online shops.\n\n"
        "Quick start:\n\n"
        "    fusionrec demo          # generate a shop, ingest it, train the fused model, serve it\n"
        "    fusionrec generate --events 1000000 --out shop/\n"
        "    fusionrec ingest shop/ --store duckdb:///shop.duckdb\n"
        "    fusionrec train --store duckdb:///shop.duckdb --out models/\n"
        "    fusionrec serve --store duckdb:///shop.duckdb --models models/\n"
        "    fusionrec evaluate --dataset amazon-beauty --models most_popular,item_knn,ease\n\n"
        "Commands that take --store also read \\[store] url from fusionrec.toml in this folder."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
        force=True,
    )


for command in (
    demo.demo,
    data.generate,
    data.ingest,
    data.quarantine,
    data.stats,
    train.train,
    train.tune,
    evaluate.evaluate,
    serve.serve,
    serve.consume,
    report.report,
    report.campaigns,
    users.erase,
    users.export,
    users.retention,
):
    app.command()(command)
