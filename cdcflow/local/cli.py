"""`cdcflow local up|down|status|fetch`."""

import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from cdcflow.local import fetch, stack
from cdcflow.local.config import StackConfig, config_from_env
from cdcflow.local.credentials import PROFILES
from cdcflow.local.errors import LocalStackError
from cdcflow.local.smoke import SmokeFailed, run_smoke

app = typer.Typer(no_args_is_help=True)
console = Console()
T = TypeVar("T")


def _config() -> StackConfig:
    try:
        return config_from_env()
    except ValueError as error:
        _fail(str(error))


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except LocalStackError as error:
        _fail(str(error))


def _progress(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


@app.command()
def up(
    with_: Annotated[list[str] | None, typer.Option("--with", help="Also start an optional service: opensearch.")] = None,
) -> None:
    """Start PostgreSQL, Kafka, Kafka Connect, DynamoDB Local and moto (and OpenSearch with --with opensearch)."""
    config = _config()
    extras = tuple(with_ or ())
    try:
        stack.check_extras(extras)
    except ValueError as error:
        _fail(str(error))
    local = _run(lambda: stack.up(config, progress=_progress, extras=extras))
    endpoints = local.endpoints
    console.print(
        f"postgres   {endpoints.postgres.host}:{endpoints.postgres.port} "
        f"(user {endpoints.postgres.admin_user}, databases {endpoints.postgres.source_database}, "
        f"{endpoints.postgres.sink_database}; TLS only: sslmode=verify-full sslrootcert={endpoints.postgres.ca_file})",
        highlight=False,
    )
    console.print(f"kafka      {endpoints.kafka.bootstrap_servers}", highlight=False)
    console.print(f"connect    {endpoints.connect.url}", highlight=False)
    console.print(f"dynamodb   {endpoints.dynamodb.url}", highlight=False)
    console.print(f"aws (moto) {endpoints.aws.url}", highlight=False)
    console.print(f"engine     {endpoints.engine.url} (Step Functions API: --endpoint-url)", highlight=False)
    console.print(f"api        {endpoints.api.url} (pipelines API, SigV4-signed requests only)", highlight=False)
    console.print(
        f"users      {config.credentials_file} (AWS shared-credentials file, profiles {', '.join(PROFILES)})",
        highlight=False,
    )
    if "opensearch" in extras and endpoints.opensearch is not None:
        console.print(f"opensearch {endpoints.opensearch.url} (no security plugin: loopback only)", highlight=False)


@app.command()
def down(purge: Annotated[bool, typer.Option(help="Also delete data and logs (jars stay cached).")] = False) -> None:
    """Stop every service of the local stack."""
    config = _config()
    _run(lambda: stack.down(config, purge=purge, progress=_progress))


@app.command()
def status() -> None:
    """Show each service, its ports, pid and health."""
    config = _config()
    table = Table("service", "ports", "pid", "health", "log")
    statuses = _run(lambda: stack.status(config))
    for service in statuses:
        down = "off (optional)" if service.optional else "[red]down[/red]"
        health = {"up": "[green]up[/green]", "down": down}.get(
            service.state, f"[yellow]{service.state}: {service.detail}[/yellow]"
        )
        ports = ", ".join(str(port) for port in service.listeners.values())
        table.add_row(service.name, ports, str(service.pid or "-"), health, str(service.log_path))
    console.print(table)
    if any(service.state != "up" and not (service.optional and service.state == "down") for service in statuses):
        sys.exit(1)


@app.command("fetch")
def fetch_jars(
    force: Annotated[bool, typer.Option(help="Fetch again even if the cached jars verify.")] = False,
    quiet: Annotated[bool, typer.Option(help="Print nothing when the cached jars verify.")] = False,
) -> None:
    """Resolve the Kafka, Connect, Debezium and DynamoDB Local jars with Maven (cached; a no-op when complete)."""
    config = _config()
    if not force and fetch.manifest_problem(config.jars_dir) is None:
        if not quiet:
            console.print(f"jars complete in {config.jars_dir}", highlight=False)
        return
    jars = _run(lambda: fetch.fetch(config, progress=_progress))
    console.print(f"jars ready in {jars.root}", highlight=False)


@app.command()
def smoke() -> None:
    """Start the stack if needed and run one CDC round trip through it, printing what arrived."""
    config = _config()
    local = _run(lambda: stack.up(config, progress=_progress))
    try:
        result = run_smoke(local.endpoints, progress=_progress)
    except SmokeFailed as error:
        _fail(str(error))
    console.print(f"change events on {result.topic}:", highlight=False)
    for event in result.events:
        console.print(f"  {event.op}  before={event.before}  after={event.after}", highlight=False)
    console.print(f"rows in the sink table {result.source_table}: {list(result.sink_rows)}", highlight=False)


if __name__ == "__main__":
    app()
