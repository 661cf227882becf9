"""`python -m cdcflow ...` is the `cdcflow` command."""

from cdcflow.cli import app

app()
