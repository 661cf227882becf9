"""The operator's commands: provision, status, watch, history, teardown, approve, reject.

Each command talks to the pipelines API (`--api-url`) and follows executions
through the Step Functions API (`--sfn-endpoint`). By default both are the
local ones; `--aws` or `--profile` switches to AWS with boto3's normal
credential resolution (requests to the API are then SigV4-signed, and the
API's URL must be given).

Exit codes: 0 success; 1 the pipeline's execution failed; 2 bad input (the
request was refused: invalid spec, unknown pipeline, conflict); 3 the API or
the Step Functions endpoint could not be reached, or failed.
"""

from __future__ import annotations

import json
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
from rich.table import Table

from cdcflow.operate import (
    CAUGHT,
    DEFAULT_API_URL,
    DEFAULT_SFN_ENDPOINT,
    SUCCEEDED,
    ApiRefused,
    ExecutionOutcome,
    PipelinesApi,
    ServiceFailed,
    ServiceUnreachable,
    StepChange,
    cause_message,
    event_rows,
    follow_execution,
    full_history,
    stepfunctions_client,
)

EXIT_OK = 0
EXIT_PIPELINE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
# States that start and end in one instant: only their end is worth a line.
_INSTANT_STATES = frozenset({"Pass", "Choice", "Succeed", "Fail"})

app = typer.Typer(help="Provision and operate pipelines through the pipelines API.", no_args_is_help=True)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

ApiUrlOption = Annotated[str | None, typer.Option(
    "--api-url", envvar="CDCFLOW_API_URL", show_default=False,
    help=f"The pipelines API (default: {DEFAULT_API_URL}, the local API; required with --aws/--profile)")]
SfnEndpointOption = Annotated[str | None, typer.Option(
    "--sfn-endpoint", envvar="CDCFLOW_SFN_ENDPOINT", show_default=False,
    help=f"The Step Functions endpoint (default: {DEFAULT_SFN_ENDPOINT}, the local engine; AWS with --aws/--profile)")]
AwsOption = Annotated[bool, typer.Option("--aws", help="Use AWS, with boto3's normal credential resolution")]
ProfileOption = Annotated[str | None, typer.Option("--profile", help="The AWS profile to use (implies --aws)")]
RegionOption = Annotated[str | None, typer.Option("--region", help="The AWS region (default: boto3's)")]
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


def _connect(api_url: str | None, sfn_endpoint: str | None, use_aws: bool, profile: str | None,
             region: str | None) -> Connection:
    on_aws = use_aws or profile is not None
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as error:
        raise BadInput(str(error)) from None
    if on_aws:
        if not api_url:
            raise BadInput("--api-url is required with --aws or --profile (the deployed API's invoke URL)")
        return Connection(PipelinesApi(api_url, session=session), sfn_endpoint, session)
    return Connection(PipelinesApi(api_url or DEFAULT_API_URL), sfn_endpoint or DEFAULT_SFN_ENDPOINT, session)


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
        raise BadInput(f"{path} is not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: "
                       f"{error}") from None


def _seconds(duration: timedelta | None) -> str:
    return f"{duration.total_seconds():.1f}s" if duration is not None else ""


def _clock(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%H:%M:%S") if moment else ""


def print_step_change(change: StepChange) -> None:
    """One line per step change, as it happens."""
    row = change.row
    if change.kind == "entered":
        if row.state_type not in _INSTANT_STATES:
            out.print(f"[dim]{_clock(row.entered_at)}[/]  [cyan]▶[/] {escape(row.name)}")
    elif change.kind == "retried":
        out.print(f"[dim]{_clock(row.entered_at)}[/]  [yellow]↻[/] {escape(row.name)}: attempt {row.attempts}"
                  + (f" after {escape(row.error)}" if row.error else ""))
    elif row.status == SUCCEEDED:
        if row.state_type in _INSTANT_STATES:
            out.print(f"[dim]{_clock(row.exited_at)}  · {escape(row.name)}[/]")
        else:
            out.print(f"[dim]{_clock(row.exited_at)}[/]  [green]✓[/] {escape(row.name)} "
                      f"[dim]{_seconds(row.duration)}[/]")
    else:
        outcome = "caught, compensating" if row.status == CAUGHT else row.status
        reason = escape(f"{row.error}: {cause_message(row.cause)}") if row.error else ""
        out.print(f"[dim]{_clock(row.exited_at)}[/]  [red]✗[/] {escape(row.name)} [dim]{_seconds(row.duration)}[/] "
                  f"[red]{outcome}[/] {reason}".rstrip())


def _follow(connection: Connection, pipeline_id: str, execution_arn: str) -> int:
    """Follow an execution to its end, then print how the pipeline stands; the exit code."""
    outcome: ExecutionOutcome = follow_execution(connection.stepfunctions(), execution_arn, print_step_change)
    if outcome.status != "SUCCEEDED":
        reason = (outcome.error or "") + (f": {cause_message(outcome.cause)}" if outcome.cause else "")
        err.print(f"[red]execution {outcome.status}:[/] {escape(reason)}")
        return EXIT_PIPELINE_FAILED
    pipeline = connection.api.describe(pipeline_id)
    out.print(f"[bold]{escape(pipeline_id)}[/] is [bold green]{escape(pipeline['status'])}[/]")
    return EXIT_OK


def _started(response: dict[str, Any], what: str) -> None:
    out.print(f"{what} [bold]{escape(response['pipeline_id'])}[/]: "
              + escape(f"execution {response['execution_arn']} ({response['status']})"))


@app.command()
def provision(
    spec_file: Annotated[Path, typer.Argument(help="The pipeline spec, JSON or YAML", show_default=False)],
    no_follow: NoFollowOption = False,
    api_url: ApiUrlOption = None, sfn_endpoint: SfnEndpointOption = None, use_aws: AwsOption = False,
    profile: ProfileOption = None, region: RegionOption = None,
) -> None:
    """Provision the pipeline a spec file describes, and follow it step by step until ACTIVE or failed."""
    with _exit_codes():
        connection = _connect(api_url, sfn_endpoint, use_aws, profile, region)
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


def _pipelines_table(pipelines: list[dict[str, Any]]) -> Table:
    table = Table("PIPELINE", "OWNER", "STATUS", "STEP", "UPDATED", "LAST ERROR")
    for pipeline in pipelines:
        cells = [pipeline["pipeline_id"], pipeline.get("owner"), pipeline["status"], pipeline.get("current_step"),
                 pipeline.get("updated_at"), _last_error(pipeline)]
        table.add_row(*(escape(str(cell or "")) for cell in cells))
    return table


def _details_table(pipeline: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    shown = {**pipeline, "last_error": _last_error(pipeline) or None}
    fields = ["pipeline_id", "owner", "status", "current_step", "last_error", "slot_lag_bytes",
              "execution_arn", "teardown_execution_arn", "created_at", "updated_at", "spec_fingerprint"]
    for field in fields:
        if shown.get(field) is not None:
            table.add_row(f"[bold]{field}[/]", escape(str(shown[field])))
    return table


@app.command()
def status(
    pipeline_id: Annotated[str | None, typer.Argument(help="One pipeline's details (default: list them all)",
                                                      show_default=False)] = None,
    status_filter: Annotated[str | None, typer.Option("--status", help="Only pipelines with this status")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's pipelines")] = None,
    api_url: ApiUrlOption = None, sfn_endpoint: SfnEndpointOption = None, use_aws: AwsOption = False,
    profile: ProfileOption = None, region: RegionOption = None,
) -> None:
    """A table of pipelines, or one pipeline's status, current step, last error and execution."""
    with _exit_codes():
        connection = _connect(api_url, sfn_endpoint, use_aws, profile, region)
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
    """The pipeline's current execution: its teardown once one has started, else its provisioning."""
    pipeline = connection.api.describe(pipeline_id)
    execution_arn = pipeline.get("teardown_execution_arn") or pipeline.get("execution_arn")
    if not execution_arn:
        raise BadInput(f"pipeline {pipeline_id!r} has no execution recorded yet")
    return execution_arn


@app.command()
def watch(
    pipeline_id: PipelineIdArgument,
    api_url: ApiUrlOption = None, sfn_endpoint: SfnEndpointOption = None, use_aws: AwsOption = False,
    profile: ProfileOption = None, region: RegionOption = None,
) -> None:
    """Follow a pipeline's current execution step by step (replaying it if it has ended)."""
    with _exit_codes():
        connection = _connect(api_url, sfn_endpoint, use_aws, profile, region)
    with _exit_codes(connection):
        execution_arn = _execution_of(connection, pipeline_id)
        out.print(escape(f"execution {execution_arn}"))
        code = _follow(connection, pipeline_id, execution_arn)
    raise typer.Exit(code)


@app.command()
def history(
    pipeline_id: PipelineIdArgument,
    api_url: ApiUrlOption = None, sfn_endpoint: SfnEndpointOption = None, use_aws: AwsOption = False,
    profile: ProfileOption = None, region: RegionOption = None,
) -> None:
    """The events of a pipeline's current execution, as a table."""
    with _exit_codes():
        connection = _connect(api_url, sfn_endpoint, use_aws, profile, region)
    with _exit_codes(connection):
        execution_arn = _execution_of(connection, pipeline_id)
        table = Table("#", "TIME", "ELAPSED", "EVENT", "STATE", "DETAIL", title=execution_arn)
        for row in event_rows(full_history(connection.stepfunctions(), execution_arn)):
            table.add_row(str(row.event_id), _clock(row.timestamp), _seconds(row.elapsed), row.event_type,
                          escape(row.state or ""), escape(row.detail or ""))
        out.print(table)


@app.command()
def teardown(
    pipeline_id: PipelineIdArgument,
    keep_topics: Annotated[bool, typer.Option("--keep-topics", help="Keep the pipeline's Kafka topics")] = False,
    no_follow: NoFollowOption = False,
    api_url: ApiUrlOption = None, sfn_endpoint: SfnEndpointOption = None, use_aws: AwsOption = False,
    profile: ProfileOption = None, region: RegionOption = None,
) -> None:
    """Tear a pipeline down (connectors, slot, publication, heartbeat table, user, secret, topics) and follow it."""
    with _exit_codes():
        connection = _connect(api_url, sfn_endpoint, use_aws, profile, region)
    with _exit_codes(connection):
        response = connection.api.teardown(pipeline_id, keep_topics=keep_topics)
        _started(response, "tearing down")
        code = EXIT_OK if no_follow else _follow(connection, pipeline_id, response["execution_arn"])
    raise typer.Exit(code)


def _answer(pipeline_id: str, approved: bool, comment: str | None, connection: Connection) -> None:
    with _exit_codes(connection):
        connection.api.answer_approval(pipeline_id, approved=approved, comment=comment)
    out.print(f"{'approved' if approved else 'rejected'}: [bold]{escape(pipeline_id)}[/]")


@app.command()
def approve(
    pipeline_id: PipelineIdArgument,
    comment: Annotated[str | None, typer.Option("--comment", help="A note passed to the workflow")] = None,
    api_url: ApiUrlOption = None, sfn_endpoint: SfnEndpointOption = None, use_aws: AwsOption = False,
    profile: ProfileOption = None, region: RegionOption = None,
) -> None:
    """Approve the step a pipeline's workflow is waiting on (the reboot of an RDS source)."""
    with _exit_codes():
        connection = _connect(api_url, sfn_endpoint, use_aws, profile, region)
    _answer(pipeline_id, True, comment, connection)


@app.command()
def reject(
    pipeline_id: PipelineIdArgument,
    reason: Annotated[str | None, typer.Option("--reason", help="Why; the failure's cause in the workflow")] = None,
    api_url: ApiUrlOption = None, sfn_endpoint: SfnEndpointOption = None, use_aws: AwsOption = False,
    profile: ProfileOption = None, region: RegionOption = None,
) -> None:
    """Reject the step a pipeline's workflow is waiting on; the workflow rolls the pipeline back."""
    with _exit_codes():
        connection = _connect(api_url, sfn_endpoint, use_aws, profile, region)
    _answer(pipeline_id, False, reason, connection)
