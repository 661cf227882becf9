"""The `cdcflow` command line.

The operator commands (`provision`, `status`, `watch`, `history`, `teardown`,
`approve`, `reject`, `reconcile`) sit at the top level beside `demo`; the
local stack and the local engine have groups of their own.
"""

import typer

from cdcflow.demo import demo
from cdcflow.engine_cli import app as engine_app
from cdcflow.local.cli import app as local_app
from cdcflow.operate_cli import app as operate_app

app = typer.Typer(help="Provision and run Change-Data-Capture pipelines.", no_args_is_help=True)
app.add_typer(operate_app)
app.command()(demo)
app.add_typer(local_app, name="local", help="The local stack of real services: PostgreSQL, Kafka, Kafka Connect, ...")
app.add_typer(engine_app, name="engine", help="The local Step Functions engine.")

if __name__ == "__main__":
    app()
