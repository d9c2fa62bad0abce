"""``python -m facetrace.cli``: the same command as ``facetrace``."""

from facetrace.cli.main import app

app(prog_name="facetrace")
