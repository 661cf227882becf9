"""`cdcflow connections add|list|show|remove`: the sources, Kafka clusters and sinks that teams' specs name.

Registering and removing are for platform admins; a team member lists and
shows the connections its teams may use, without their hosts, URLs or
secret names. Exit codes as for the other commands: 2 when the API refuses
(invalid connection, not an admin, in use), 3 when it cannot be reached.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cdcflow.operate_cli import CONNECTION_HELP, _connect, _exit_codes, load_spec_file, out

app = typer.Typer(no_args_is_help=True, help="Connections that teams' pipeline specs name (admins register them).")

NameArgument = Annotated[str, typer.Argument(help="The connection's name", show_default=False)]


def _summary(connection: dict[str, Any]) -> str:
    if connection.get("kind") == "source":
        where = f"{connection.get('host', '')}:{connection.get('port', '')}/{connection.get('database', '')}"
    elif connection.get("kind") == "cluster":
        where = connection.get("bootstrap_servers", "")
    else:
        where = connection.get("url") or f"{connection.get('host', '')}:{connection.get('port', '')}/" \
                                           f"{connection.get('database', '')}"
    return where if where.strip(":/") else connection.get("description", "")


@app.command("add", epilog=CONNECTION_HELP)
def add(
    ctx: typer.Context,
    connection_file: Annotated[Path, typer.Argument(help="The connection, JSON or YAML", show_default=False)],
) -> None:
    """Register (or replace) a connection from a file (admins)."""
    with _exit_codes():
        connection = _connect(ctx)
        document = load_spec_file(connection_file)
    with _exit_codes(connection):
        registered = connection.api.register_connection(document)
    out.print(escape(f"registered {registered['kind']} connection {registered['name']} "
                     f"for teams {', '.join(registered['teams'])}"))


@app.command("list", epilog=CONNECTION_HELP)
def list_connections(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="source, cluster or sink")] = None,
) -> None:
    """The connections your teams may use (every one for admins)."""
    with _exit_codes():
        connection = _connect(ctx)
    with _exit_codes(connection):
        found = connection.api.list_connections(kind=kind)["connections"]
    if not found:
        out.print("no connections")
        return
    table = Table("name", "kind", "type", "teams", "reaches")
    for item in found:
        table.add_row(*(escape(str(cell)) for cell in (
            item["name"], item["kind"], item.get("type", ""), ", ".join(item.get("teams", [])) or "(yours)",
            _summary(item))))
    out.print(table)


@app.command("show", epilog=CONNECTION_HELP)
def show(ctx: typer.Context, name: NameArgument) -> None:
    """One connection, as JSON."""
    with _exit_codes():
        connection = _connect(ctx)
    with _exit_codes(connection):
        out.print(escape(json.dumps(connection.api.describe_connection(name), indent=2, sort_keys=True)))


@app.command("remove", epilog=CONNECTION_HELP)
def remove(ctx: typer.Context, name: NameArgument) -> None:
    """Remove a connection that no pipeline uses (admins)."""
    with _exit_codes():
        connection = _connect(ctx)
    with _exit_codes(connection):
        connection.api.remove_connection(name)
    out.print(escape(f"removed connection {name}"))
