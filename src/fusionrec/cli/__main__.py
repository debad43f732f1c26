"""``python -m fusionrec.cli``: the same app as the ``fusionrec`` command."""

from fusionrec.cli import app

app()
