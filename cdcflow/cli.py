"""The `cdcflow` command line."""

import typer

from cdcflow.engine_cli import app as engine_app
from cdcflow.local.cli import app as local_app

app = typer.Typer(help="Provision and run Change-Data-Capture pipelines.", no_args_is_help=True)
app.add_typer(local_app, name="local", help="The local stack of real services: PostgreSQL, Kafka, Kafka Connect, ...")
app.add_typer(engine_app, name="engine", help="The local Step Functions engine.")

if __name__ == "__main__":
    app()
