"""The operator's commands: provision, status, watch, history, teardown, pause, resume, update, resync, approve, reject,
reconcile.

Each command talks to the pipelines API (`--api-url`) and follows executions
through the Step Functions API (`--sfn-endpoint`). By default both are the
local ones; `--aws` switches to AWS (the API's URL must then be given). Every
request to the API is SigV4-signed, as API Gateway's IAM authorization
requires: on AWS with boto3's normal credential resolution (`--profile`,
`AWS_PROFILE`, the environment...), locally with a profile of the local
stack's credentials file (`--profile`, `CDCFLOW_PROFILE` or `AWS_PROFILE`,
default `cdcflow-admin`). These connection options are declared once, on the
group (`cdcflow.connection_options`), and may come before or after the
command's name.

`reconcile` runs a reconciliation sweep: in this process against the local
stack, or with `--aws` by invoking the deployed Reconcile function.

Exit codes: 0 success (for `reconcile`: everything healthy); 1 the pipeline's
execution failed; 2 bad input (the request was refused: invalid spec, unknown
pipeline, conflict); 3 the API, the Step Functions endpoint, the registry or
the Reconcile function could not be reached, or failed; 4 (`reconcile`) drift
was found: a pipeline not ACTIVE, a connector restarted, a publication
re-aligned, an orphan (even one this sweep deleted), a stuck execution;
5 (`reconcile`) the sweep could not check or repair something, which
outweighs 4 since what it could not see may hide more.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
import yaml
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

import cdcflow.local
from cdcflow.api_client import DEFAULT_API_URL, ApiRefused, PipelinesApi, profile_session
from cdcflow.connection_options import ConnectionOptions, OptionsAfterCommand, connection_options
from cdcflow.errors import ServiceFailed, ServiceUnreachable
from cdcflow.history import (
    CAUGHT,
    DEFAULT_SFN_ENDPOINT,
    SUCCEEDED,
    ExecutionOutcome,
    StepChange,
    cause_message,
    event_rows,
    follow_execution,
    full_history,
    stepfunctions_client,
)
from cdcflow.local.config import config_from_env
from cdcflow.local.credentials import ADMIN_PROFILE
from cdcflow.local.workflows import lambda_environment
from cdcflow.reconcile_runner import reconcile_findings, reconcile_incomplete, reconcile_locally, reconcile_on_aws
from lambdas.reconcile.policy import ReconcileSettingsInvalid

EXIT_OK = 0
EXIT_PIPELINE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_DRIFT_FOUND = 4
EXIT_SWEEP_INCOMPLETE = 5
EXIT_PIPELINE_BROKEN = 6
# States that start and end in one instant: only their end is worth a line.
_INSTANT_STATES = frozenset({"Pass", "Choice", "Succeed", "Fail"})

# The commands, without the connection options they share: `app` below and the `cdcflow` app add those.
commands = typer.Typer()
CONNECTION_HELP = (
    "Connection options (--api-url, --sfn-endpoint, --aws, --profile, --region; see cdcflow --help) "
    "may come before or after the command."
)
app = typer.Typer(
    help="Provision and operate pipelines through the pipelines API.",
    no_args_is_help=True,
    cls=OptionsAfterCommand,
    callback=connection_options,
)
app.add_typer(commands)
# Lines are not wrapped (tables still fit the width): an error's cause stays on one line, whole.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

PipelineIdArgument = Annotated[str, typer.Argument(help="The pipeline id", show_default=False)]
NoFollowOption = Annotated[bool, typer.Option("--no-follow", help="Return once the execution has started")]


class BadInput(Exception):
    """The command line or a file it names is unusable; the message says why."""


@dataclass
class Connection:
    api: PipelinesApi
    sfn_endpoint: str | None
    session: boto3.Session

    def stepfunctions(self) -> Any:
        return stepfunctions_client(self.sfn_endpoint, self.session)


def _session(options: ConnectionOptions) -> boto3.Session:
    try:
        return boto3.Session(profile_name=options.profile, region_name=options.region)
    except ProfileNotFound as error:
        raise BadInput(str(error)) from None


def _local_session(options: ConnectionOptions) -> boto3.Session:
    """The local user that signs: the profile asked for (else AWS_PROFILE, else the admin) of the local stack's file."""
    profile = options.profile or os.environ.get("AWS_PROFILE") or ADMIN_PROFILE
    try:
        credentials_file = config_from_env().credentials_file
    except ValueError as error:
        raise BadInput(str(error)) from None
    try:
        return profile_session(profile, credentials_file=credentials_file, region=options.region)
    except ProfileNotFound:
        hint = "" if credentials_file.exists() else " (it does not exist yet: `cdcflow local up` creates it)"
        raise BadInput(f"no profile {profile!r} in the local credentials file {credentials_file}{hint}") from None


def _connect(ctx: typer.Context) -> Connection:
    options = ConnectionOptions.of(ctx)
    if options.on_aws:
        session = _session(options)
        if not options.api_url:
            raise BadInput("--api-url is required with --aws (the deployed API's invoke URL)")
        return Connection(PipelinesApi(options.api_url, session=session), options.sfn_endpoint, session)
    session = _local_session(options)
    api = PipelinesApi(options.api_url or DEFAULT_API_URL, session=session)
    return Connection(api, options.sfn_endpoint or DEFAULT_SFN_ENDPOINT, session)


@contextmanager
def _exit_codes(connection: Connection | None = None) -> Iterator[None]:
    """Turn the ways a command fails into one clear message and its exit code."""
    try:
        yield
    except BadInput as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except ApiRefused as error:
        err.print(f"[red]refused ({error.status}):[/] {escape(str(error))}")
        for problem in error.body.get("problems") or []:
            err.print(escape(f"  - {problem.get('field')}: {problem.get('message')}"))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (ServiceUnreachable, ServiceFailed) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(EXIT_UNREACHABLE) from None
    except (ClientError, BotoCoreError) as error:
        where = connection.sfn_endpoint if connection and connection.sfn_endpoint else "AWS"
        err.print(f"[red]error:[/] Step Functions at {escape(f'{where}: {error}')}")
        raise typer.Exit(EXIT_UNREACHABLE) from None


def load_spec_file(path: Path) -> Any:
    """A pipeline spec from a JSON or YAML file (by extension); `BadInput` naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"cannot read {path}: {error}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (ValueError, yaml.YAMLError) as error:
        raise BadInput(
            f"{path} is not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: {error}"
        ) from None


def _seconds(duration: timedelta | None) -> str:
    return f"{duration.total_seconds():.1f}s" if duration is not None else ""


def _clock(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%H:%M:%S") if moment else ""


# The backfill's states after which the registry holds fresh progress (lambdas/steps/backfill.py).
BACKFILL_PROGRESS_STATES = frozenset({"MarkActiveBackfilling", "CheckBackfillCopied", "MarkBackfilled"})


def print_step_change(change: StepChange) -> None:
    """One line per step change, as it happens."""
    row = change.row
    if change.kind == "entered":
        if row.state_type not in _INSTANT_STATES:
            out.print(f"[dim]{_clock(row.entered_at)}[/]  [cyan]▶[/] {escape(row.name)}")
    elif change.kind == "retried":
        out.print(
            f"[dim]{_clock(row.entered_at)}[/]  [yellow]↻[/] {escape(row.name)}: attempt {row.attempts}"
            + (f" after {escape(row.error)}" if row.error else "")
        )
    elif row.status == SUCCEEDED:
        if row.state_type in _INSTANT_STATES:
            out.print(f"[dim]{_clock(row.exited_at)}  · {escape(row.name)}[/]")
        else:
            out.print(
                f"[dim]{_clock(row.exited_at)}[/]  [green]✓[/] {escape(row.name)} [dim]{_seconds(row.duration)}[/]"
            )
    else:
        outcome = "caught, compensating" if row.status == CAUGHT else row.status
        reason = escape(f"{row.error}: {cause_message(row.cause)}") if row.error else ""
        out.print(
            f"[dim]{_clock(row.exited_at)}[/]  [red]✗[/] {escape(row.name)} [dim]{_seconds(row.duration)}[/] "
            f"[red]{outcome}[/] {reason}".rstrip()
        )


def backfill_line(backfill: dict[str, Any]) -> str:
    """The backfill's progress in one line: `RUNNING: 120,000 of about 1,000,000 rows (12%), 1 of 3 tables, ...`."""
    copied, estimated = int(backfill.get("rows_copied") or 0), int(backfill.get("rows_estimated") or 0)
    tables, done = backfill.get("tables") or [], backfill.get("tables_done") or []
    parts = [f"{copied:,} of about {estimated:,} rows" + (f" ({100 * copied // estimated}%)" if estimated else ""),
             f"{len(done)} of {len(tables)} tables read"]
    if backfill.get("rows_per_second"):
        parts.append(f"{int(backfill['rows_per_second']):,} rows/s")
    if backfill.get("status") == "RUNNING" and backfill.get("eta_seconds") is not None:
        minutes, seconds = divmod(int(backfill["eta_seconds"]), 60)
        parts.append(f"about {minutes}m {seconds:02d}s left" if minutes else f"about {seconds}s left")
    if backfill.get("error"):
        parts.append(str(backfill["error"]))
    return f"{backfill.get('status', '?')}: " + ", ".join(parts)


def _follow(connection: Connection, pipeline_id: str, execution_arn: str) -> int:
    """Follow an execution to its end, then print how the pipeline stands; the exit code."""

    def report(change: StepChange) -> None:
        print_step_change(change)
        # Each check of a backfill recorded its progress in the registry: show it as it moves.
        if change.row.name in BACKFILL_PROGRESS_STATES and change.kind != "entered" and change.row.status == SUCCEEDED:
            backfill = connection.api.describe(pipeline_id).get("backfill")
            if backfill:
                out.print(f"           [cyan]backfill[/] {escape(backfill_line(backfill))}")

    outcome: ExecutionOutcome = follow_execution(connection.stepfunctions(), execution_arn, report)
    if outcome.status != "SUCCEEDED":
        reason = (outcome.error or "") + (f": {cause_message(outcome.cause)}" if outcome.cause else "")
        err.print(f"[red]execution {outcome.status}:[/] {escape(reason)}")
        return EXIT_PIPELINE_FAILED
    pipeline = connection.api.describe(pipeline_id)
    out.print(f"[bold]{escape(pipeline_id)}[/] is [bold green]{escape(pipeline['status'])}[/]")
    return EXIT_OK


def _started(response: dict[str, Any], what: str) -> None:
    out.print(
        f"{what} [bold]{escape(response['pipeline_id'])}[/]: "
        + escape(f"execution {response['execution_arn']} ({response['status']})")
    )


@commands.command(epilog=CONNECTION_HELP)
def provision(
    ctx: typer.Context,
    spec_file: Annotated[Path, typer.Argument(help="The pipeline spec, JSON or YAML", show_default=False)],
    no_follow: NoFollowOption = False,
) -> None:
    """Provision the pipeline a spec file describes, and follow it step by step until ACTIVE or failed."""
    with _exit_codes():
        connection = _connect(ctx)
    with _exit_codes(connection):
        response = connection.api.provision(load_spec_file(spec_file))
        _started(response, "provisioning")
        code = EXIT_OK if no_follow else _follow(connection, response["pipeline_id"], response["execution_arn"])
    raise typer.Exit(code)


def _last_error(pipeline: dict[str, Any]) -> str:
    last_error = pipeline.get("last_error")
    if not last_error:
        return ""
    return f"{last_error.get('error')}: {cause_message(last_error.get('cause'))}".rstrip(": ")


def _whole(header: str) -> Column:
    """A column whose values wrap rather than end in an ellipsis: names and ARNs get copied from it."""
    return Column(header, overflow="fold")


def _pipelines_table(pipelines: list[dict[str, Any]]) -> Table:
    table = Table(_whole("PIPELINE"), "OWNER", "STATUS", "STEP", _whole("UPDATED"), "LAST ERROR")
    for pipeline in pipelines:
        cells = [
            pipeline["pipeline_id"],
            pipeline.get("owner"),
            pipeline["status"],
            pipeline.get("current_step"),
            pipeline.get("updated_at"),
            _last_error(pipeline),
        ]
        table.add_row(*(escape(str(cell or "")) for cell in cells))
    return table


def _details_table(pipeline: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    shown = {**pipeline, "last_error": _last_error(pipeline) or None}
    fields = [
        "pipeline_id",
        "owner",
        "status",
        "current_step",
        "last_error",
        "slot_lag_bytes",
        "execution_arn",
        "teardown_execution_arn",
        "created_at",
        "updated_at",
        "spec_fingerprint",
    ]
    for field in fields:
        if shown.get(field) is not None:
            table.add_row(f"[bold]{field}[/]", escape(str(shown[field])))
    if pipeline.get("backfill"):
        table.add_row("[bold]backfill[/]", escape(backfill_line(pipeline["backfill"])))
    for alarm in pipeline.get("alarms") or []:
        colour = {"OK": "green", "ALARM": "red"}.get(alarm.get("state"), "yellow")
        reason = f" ({alarm['reason']})" if alarm.get("reason") else ""
        table.add_row(f"[bold]alarm {escape(str(alarm.get('alarm')))}[/]",
                      f"[{colour}]{escape(str(alarm.get('state')))}[/]{escape(reason)}")
    if pipeline.get("alarms_error"):
        table.add_row("[bold]alarms[/]", escape(str(pipeline["alarms_error"])))
    return table


@commands.command(epilog=CONNECTION_HELP)
def status(
    ctx: typer.Context,
    pipeline_id: Annotated[
        str | None, typer.Argument(help="One pipeline's details (default: list them all)", show_default=False)
    ] = None,
    status_filter: Annotated[str | None, typer.Option("--status", help="Only pipelines with this status")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's pipelines")] = None,
) -> None:
    """A table of pipelines, or one pipeline's status, current step, last error and execution."""
    with _exit_codes():
        connection = _connect(ctx)
    with _exit_codes(connection):
        if pipeline_id is not None:
            out.print(_details_table(connection.api.describe(pipeline_id)))
            return
        pipelines: list[dict[str, Any]] = []
        token = None
        while True:
            page = connection.api.list_pipelines(status=status_filter, owner=owner, next_token=token)
            pipelines += page["pipelines"]
            token = page.get("next_token")
            if not token:
                break
        out.print(_pipelines_table(pipelines) if pipelines else "no pipelines")


def _execution_of(connection: Connection, pipeline_id: str) -> str:
    """The pipeline's current execution: its teardown once one has started, else the pause or resume that holds
    it, else its provisioning."""
    pipeline = connection.api.describe(pipeline_id)
    execution_arn = (pipeline.get("teardown_execution_arn") or pipeline.get("lifecycle_execution_arn")
                     or pipeline.get("execution_arn"))
    if not execution_arn:
        raise BadInput(f"pipeline {pipeline_id!r} has no execution recorded yet")
    return execution_arn


@commands.command(epilog=CONNECTION_HELP)
def watch(
    ctx: typer.Context,
    pipeline_id: PipelineIdArgument,
) -> None:
    """Follow a pipeline's current execution step by step (replaying it if it has ended)."""
    with _exit_codes():
        connection = _connect(ctx)
    with _exit_codes(connection):
        execution_arn = _execution_of(connection, pipeline_id)
        out.print(escape(f"execution {execution_arn}"))
        code = _follow(connection, pipeline_id, execution_arn)
    raise typer.Exit(code)


@commands.command(epilog=CONNECTION_HELP)
def history(
    ctx: typer.Context,
    pipeline_id: PipelineIdArgument,
) -> None:
    """The events of a pipeline's current execution, as a table."""
    with _exit_codes():
        connection = _connect(ctx)
    with _exit_codes(connection):
        execution_arn = _execution_of(connection, pipeline_id)
        table = Table("#", "TIME", "ELAPSED", "EVENT", "STATE", "DETAIL", title=execution_arn)
        for row in event_rows(full_history(connection.stepfunctions(), execution_arn)):
            table.add_row(
                str(row.event_id),
                _clock(row.timestamp),
                _seconds(row.elapsed),
                row.event_type,
                escape(row.state or ""),
                escape(row.detail or ""),
            )
        out.print(table)


@commands.command(epilog=CONNECTION_HELP)
def teardown(
    ctx: typer.Context,
    pipeline_id: PipelineIdArgument,
    keep_topics: Annotated[bool, typer.Option("--keep-topics", help="Keep the pipeline's Kafka topics")] = False,
    keep_index: Annotated[
        bool, typer.Option("--keep-index", help="Keep an OpenSearch sink's indices (and the documents in them)")
    ] = False,
    no_follow: NoFollowOption = False,
) -> None:
    """Tear a pipeline down (connectors, slot, publication, heartbeat table, user, secret, topics) and follow it."""
    with _exit_codes():
        connection = _connect(ctx)
    with _exit_codes(connection):
        response = connection.api.teardown(pipeline_id, keep_topics=keep_topics, keep_index=keep_index)
        _started(response, "tearing down")
        code = EXIT_OK if no_follow else _follow(connection, pipeline_id, response["execution_arn"])
    raise typer.Exit(code)


@commands.command(epilog=CONNECTION_HELP)
def pause(ctx: typer.Context, pipeline_id: PipelineIdArgument, no_follow: NoFollowOption = False) -> None:
    """Pause an ACTIVE pipeline's connectors and follow it until PAUSED; its slot keeps the changes made meanwhile."""
    with _exit_codes():
        connection = _connect(ctx)
    with _exit_codes(connection):
        response = connection.api.pause(pipeline_id)
        _started(response, "pausing")
        code = EXIT_OK if no_follow else _follow(connection, pipeline_id, response["execution_arn"])
    raise typer.Exit(code)


@commands.command(epilog=CONNECTION_HELP)
def resume(ctx: typer.Context, pipeline_id: PipelineIdArgument, no_follow: NoFollowOption = False) -> None:
    """Resume a PAUSED pipeline's connectors and follow it until a fresh canary reached the sink and it is ACTIVE."""
    with _exit_codes():
        connection = _connect(ctx)
    with _exit_codes(connection):
        response = connection.api.resume(pipeline_id)
        _started(response, "resuming")
        code = EXIT_OK if no_follow else _follow(connection, pipeline_id, response["execution_arn"])
    raise typer.Exit(code)


@commands.command(epilog=CONNECTION_HELP)
def update(
    ctx: typer.Context,
    spec_file: Annotated[Path, typer.Argument(help="The new spec (with --patch: the part that changes), JSON or "
                                                   "YAML", show_default=False)],
    patch: Annotated[bool, typer.Option("--patch", help="The file holds only what changes; it is merged over the "
                                                        "pipeline's spec")] = False,
    pipeline_id: Annotated[str | None, typer.Option("--pipeline", help="The pipeline to update (default: the "
                                                                       "file's pipeline_id)")] = None,
    keep_topics: Annotated[bool, typer.Option("--keep-topics", help="Keep the topics of tables the update "
                                                                    "removes")] = False,
    no_follow: NoFollowOption = False,
) -> None:
    """Update an ACTIVE pipeline to a new spec (tables added with an incremental snapshot, tables removed,
    connector settings changed) and follow it step by step; a failure leaves it ACTIVE on its previous spec."""
    with _exit_codes():
        connection = _connect(ctx)
        document = load_spec_file(spec_file)
        target = pipeline_id or (document.get("pipeline_id") if isinstance(document, dict) else None)
        if not target:
            raise BadInput(f"{spec_file} names no pipeline_id; name the pipeline with --pipeline")
    with _exit_codes(connection):
        response = connection.api.update(target, document, patch=patch, keep_topics=keep_topics)
        changes = response.get("changes") or {}
        for label, key in (("adding", "tables_added"), ("removing", "tables_removed"),
                           ("Debezium settings", "debezium_changed"), ("sink settings", "sink_changed")):
            if changes.get(key):
                out.print(escape(f"{label}: {', '.join(changes[key])}"))
        if changes.get("sink_tables_left"):
            out.print(escape(f"sink tables left in place: {', '.join(changes['sink_tables_left'])}"))
        if "execution_arn" not in response:
            out.print(escape(response.get("message", "nothing to change")))
            raise typer.Exit(EXIT_OK)
        _started(response, "updating")
        code = EXIT_OK if no_follow else _follow(connection, target, response["execution_arn"])
    raise typer.Exit(code)


@commands.command(epilog=CONNECTION_HELP)
def resync(
    ctx: typer.Context,
    pipeline_id: PipelineIdArgument,
    tables: Annotated[list[str] | None, typer.Option("--table", help="A table to deliver again, schema.table "
                                                                     "(repeat; default: every captured table)")] = None,
    conditions: Annotated[list[str] | None, typer.Option("--where", help="A WHERE condition for the --table at the "
                                                                         "same position (repeat; '' for none)")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="A BROKEN pipeline (its slot lost): a new slot and "
                                                            "source connector, every table snapshotted again")] = False,
    no_follow: NoFollowOption = False,
) -> None:
    """Deliver an ACTIVE pipeline's tables again, or only the rows a condition matches, through an incremental
    snapshot; PostgreSQL checks each condition before anything starts. Re-delivered rows are upserts at the sink.
    With --rebuild, bring a BROKEN pipeline back with a new slot and a full snapshot."""
    with _exit_codes():
        connection = _connect(ctx)
        if rebuild and (tables or conditions):
            raise BadInput("--rebuild snapshots every table: it takes no --table or --where")
        where = resync_conditions(tables or [], conditions or [])
    with _exit_codes(connection):
        response = connection.api.resync(pipeline_id, tables or None, where, rebuild=rebuild)
        for table, seen in (response.get("tables") or {}).items():
            condition = f" where {where[table]}" if table in where else ""
            out.print(escape(f"{table}{condition}: {seen.get('matched')} rows match now"))
        _started(response, "rebuilding" if rebuild else "resyncing")
        code = EXIT_OK if no_follow else _follow(connection, pipeline_id, response["execution_arn"])
        if code == EXIT_OK and not no_follow and not rebuild:
            report = _execution_output(connection, response["execution_arn"]).get("MarkResynced") or {}
            for table, counts in (report.get("tables") or {}).items():
                out.print(escape(f"{table}: {counts['delivered']} rows delivered again ({counts['matched']} match)"))
    raise typer.Exit(code)


def resync_conditions(tables: list[str], conditions: list[str]) -> dict[str, str]:
    """`--where` values paired with the `--table` at the same position; '' means none for that table."""
    if len(conditions) > len(tables):
        raise BadInput(f"{len(conditions)} --where for {len(tables)} --table: each --where belongs to the --table "
                       "at the same position")
    return {table: condition for table, condition in zip(tables, conditions, strict=False) if condition.strip()}


def _execution_output(connection: Connection, execution_arn: str) -> dict[str, Any]:
    output = connection.stepfunctions().describe_execution(executionArn=execution_arn).get("output")
    return json.loads(output) if output else {}


def _answer(pipeline_id: str, approved: bool, comment: str | None, connection: Connection) -> None:
    with _exit_codes(connection):
        connection.api.answer_approval(pipeline_id, approved=approved, comment=comment)
    out.print(f"{'approved' if approved else 'rejected'}: [bold]{escape(pipeline_id)}[/]")


@commands.command(epilog=CONNECTION_HELP)
def approve(
    ctx: typer.Context,
    pipeline_id: PipelineIdArgument,
    comment: Annotated[str | None, typer.Option("--comment", help="A note passed to the workflow")] = None,
) -> None:
    """Approve the step a pipeline's workflow is waiting on (the reboot of an RDS source)."""
    with _exit_codes():
        connection = _connect(ctx)
    _answer(pipeline_id, True, comment, connection)


@commands.command(epilog=CONNECTION_HELP)
def reject(
    ctx: typer.Context,
    pipeline_id: PipelineIdArgument,
    reason: Annotated[str | None, typer.Option("--reason", help="Why; the failure's cause in the workflow")] = None,
) -> None:
    """Reject the step a pipeline's workflow is waiting on; the workflow rolls the pipeline back."""
    with _exit_codes():
        connection = _connect(ctx)
    _answer(pipeline_id, False, reason, connection)


# -- reconcile ------------------------------------------------------------------


def _bytes(size: int | None) -> str:
    if size is None:
        return "unknown"
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _slot_cell(pipeline: dict[str, Any]) -> str:
    if pipeline["slot_active"] is None:
        return "[dim]not seen[/]"
    state = "active" if pipeline["slot_active"] else "[yellow]inactive[/]"
    return f"{state}, lag {_bytes(pipeline['slot_lag_bytes'])}"


def _connector_cell(state: str | None) -> str:
    colour = {"RUNNING": "green", "FAILED": "red", "MISSING": "red"}.get(state or "", "yellow")
    return f"[{colour}]{escape(state)}[/]" if state else "[dim]not seen[/]"


def _status_cell(pipeline: dict[str, Any]) -> str:
    colour = "green" if pipeline["status"] == "ACTIVE" else "red"
    now = f"[{colour}]{pipeline['status']}[/]"
    return now if pipeline["status"] == pipeline["previous_status"] else f"{pipeline['previous_status']} → {now}"


def _actions_cell(pipeline: dict[str, Any]) -> str:
    actions = [f"restarted {name}" for name in pipeline["restarted"]]
    if pipeline["publication_added"]:
        actions.append(f"publication + {', '.join(pipeline['publication_added'])}")
    if pipeline["publication_removed"]:
        actions.append(f"publication - {', '.join(pipeline['publication_removed'])}")
    return escape("\n".join(actions))


def _remarks_cell(pipeline: dict[str, Any]) -> str:
    lines = [f"[red]{escape(problem)}[/]" for problem in pipeline["problems"]]
    lines += [f"[red]error: {escape(error)}[/]" for error in pipeline["errors"]]
    lines += [escape(note) for note in pipeline["notes"]]
    return "\n".join(lines)


def _orphan_outcome(orphan: dict[str, Any], repair: bool) -> str:
    if orphan["deleted"]:
        return "[green]deleted[/]"
    if orphan["error"]:
        return f"[red]not deleted: {escape(orphan['error'])}[/]"
    return "[yellow]kept[/] (not chosen for repair)" if repair else "[yellow]kept[/] (--repair deletes it)"


def render_reconcile_report(report: dict[str, Any], console: Console) -> None:
    """A sweep's report as tables: pipelines, orphans, stuck executions and errors, then the verdict."""
    summary = report["summary"]
    by_status = ", ".join(f"{status} {count}" for status, count in summary["by_status"].items())
    console.print(
        f"[bold]reconcile[/] {escape(report['started_at'])}"
        + (" [bold](repair)[/]" if report["repair"] else "")
        + f": {summary['registered']} registered ({by_status}), {summary['reconciled']} checked"
    )
    if report["pipelines"]:
        table = Table(
            "PIPELINE", "STATUS", "SOURCE", "SINK", "SLOT", "ACTIONS", "PROBLEMS AND NOTES", title="pipelines"
        )
        for pipeline in report["pipelines"]:
            table.add_row(
                escape(pipeline["pipeline_id"]),
                _status_cell(pipeline),
                _connector_cell(pipeline["source_connector"]),
                _connector_cell(pipeline["sink_connector"]),
                _slot_cell(pipeline),
                _actions_cell(pipeline),
                _remarks_cell(pipeline),
            )
        console.print(table)
    if report["orphans"]:
        table = Table(
            "KIND", _whole("NAME"), _whole("LOCATION"), _whole("PIPELINE"), "REASON", "OUTCOME", title="orphans"
        )
        for orphan in report["orphans"]:
            cells = (orphan["kind"], orphan["name"], orphan["location"], orphan["pipeline_id"], orphan["reason"])
            table.add_row(*(escape(cell) for cell in cells), _orphan_outcome(orphan, report["repair"]))
        console.print(table)
    if report["stuck"]:
        table = Table(
            _whole("PIPELINE"), "STATUS", "STEP", "SINCE", "MINUTES", _whole("EXECUTION"), title="stuck executions"
        )
        for stuck in report["stuck"]:
            cells = (
                stuck["pipeline_id"],
                stuck["status"],
                stuck["current_step"] or "",
                stuck["updated_at"],
                str(stuck["minutes_since_update"]),
                stuck["execution_arn"],
            )
            table.add_row(*(escape(cell) for cell in cells))
        console.print(table)
    if report["errors"]:
        table = Table("TARGET", "LOCATION", "ERROR", "PIPELINES", title="could not check")
        for error in report["errors"]:
            cells = (error["target"], error["location"], error["error"], ", ".join(error["pipelines"]))
            table.add_row(*(escape(cell) for cell in cells))
        console.print(table)
    findings = reconcile_findings(report)
    if reconcile_incomplete(report):
        console.print("[bold red]incomplete:[/] the sweep could not check everything (see the errors above)")
    if findings:
        console.print(f"[bold yellow]drift found:[/] {len(findings)} finding(s)")
        for finding in findings:
            console.print(f"  - {escape(finding)}")
    if not findings and not reconcile_incomplete(report):
        console.print("[bold green]healthy:[/] nothing to repair")


def reconcile_exit_code(report: dict[str, Any]) -> int:
    """6 when a pipeline is BROKEN (its replication slot vanished, was re-created or lost), else 5 when the sweep
    itself could not check everything, else 4 when it found drift (a pipeline not ACTIVE or whose own dependency
    is unreachable counts as drift), else 0."""
    if any(pipeline["status"] == "BROKEN" for pipeline in report["pipelines"]):
        return EXIT_PIPELINE_BROKEN
    if reconcile_incomplete(report):
        return EXIT_SWEEP_INCOMPLETE
    return EXIT_DRIFT_FOUND if reconcile_findings(report) else EXIT_OK


@commands.command(epilog=CONNECTION_HELP)
def reconcile(
    ctx: typer.Context,
    repair: Annotated[
        bool, typer.Option("--repair", help="Delete the orphans found (default: only report them)")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="PIPELINE_ID",
            help="With --repair: delete only these pipelines' orphans (repeatable)",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables")] = False,
) -> None:
    """Run one reconciliation sweep and report pipelines, orphans, stuck executions and errors.

    Restarts FAILED connectors and re-aligns publications; deletes orphans only
    with --repair. Locally it runs in this process against the local stack;
    with --aws it invokes the deployed Reconcile function and waits
    for its report. Exit codes: 0 healthy; 4 drift found; 5 something could
    not be checked; 6 a pipeline is BROKEN (its slot vanished, was re-created
    or lost: see docs/runbooks.md#slot-broken); 3 the registry or the
    function could not be reached.
    """
    if only and not repair:
        err.print("[red]error:[/] --only chooses which orphans --repair deletes; give --repair too")
        raise typer.Exit(EXIT_BAD_INPUT)
    options = ConnectionOptions.of(ctx)
    with _exit_codes():
        if options.on_aws:
            report = _reconcile_on_aws(repair, only, options)
        else:
            report = _reconcile_locally(repair, only)
    if as_json:
        out.print_json(data=report)
    else:
        render_reconcile_report(report, out)
    raise typer.Exit(reconcile_exit_code(report))


def _reconcile_on_aws(repair: bool, only: list[str] | None, options: ConnectionOptions) -> dict:
    session = _session(options)
    try:
        return reconcile_on_aws(session, repair=repair, repair_only=only)
    except (ClientError, BotoCoreError) as error:
        raise ServiceUnreachable(f"cannot invoke the Reconcile function: {error}") from None


def _reconcile_locally(repair: bool, only: list[str] | None) -> dict[str, Any]:
    environment = local_stack_environment()
    try:
        return reconcile_locally(environment, repair=repair, repair_only=only)
    except ReconcileSettingsInvalid as error:
        raise BadInput(str(error)) from None
    except (ClientError, BotoCoreError) as error:
        raise ServiceUnreachable(f"cannot read the pipeline registry: {error}") from None


def local_stack_environment() -> dict[str, str]:
    """The environment the local stack's engine runs the handlers with: its endpoints, tables and dummy credentials.

    Starts nothing: raises `ServiceUnreachable` naming the services that are not up.
    """
    try:
        config = config_from_env()
    except ValueError as error:
        raise BadInput(str(error)) from None
    # An optional service (OpenSearch) that was never started is not missing; one started and unhealthy is.
    not_up = [service.name for service in cdcflow.local.status(config)
              if service.state != "up" and not (service.optional and service.state == "down")]
    if not_up:
        raise ServiceUnreachable(
            f"the local stack is not running ({', '.join(not_up)} not up); `cdcflow local up` starts it"
        )
    return lambda_environment(config)
