"""The `cdcflow` command line.

The operator commands (`provision`, `status`, `watch`, `history`, `teardown`,
`pause`, `resume`, `approve`, `reject`, `reconcile`) sit at the top level beside `demo`; the
local stack and the local engine have groups of their own.
"""

import typer

from cdcflow.connection_options import OptionsAfterCommand, connection_options
from cdcflow.connections_cli import app as connections_app
from cdcflow.demo import demo
from cdcflow.engine_cli import app as engine_app
from cdcflow.local.cli import app as local_app
from cdcflow.operate_cli import commands as operate_commands
from cdcflow.workflows_cli import app as workflows_app

# The operator commands' connection options belong to the top level, where those commands are.
app = typer.Typer(
    help="Provision and run Change-Data-Capture pipelines.",
    no_args_is_help=True,
    cls=OptionsAfterCommand,
    callback=connection_options,
)
app.add_typer(operate_commands)
app.command()(demo)
app.add_typer(connections_app, name="connections")
app.add_typer(local_app, name="local", help="The local stack of real services: PostgreSQL, Kafka, Kafka Connect, ...")
app.add_typer(engine_app, name="engine", help="The local Step Functions engine.")
app.add_typer(workflows_app, name="workflows", help="The workflows' step tables and their rendered ASL.")

if __name__ == "__main__":
    app()
