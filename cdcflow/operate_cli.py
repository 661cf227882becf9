"""The operator's commands: provision, status, watch, history, teardown, approve, reject, reconcile.

Each command talks to the pipelines API (`--api-url`) and follows executions
through the Step Functions API (`--sfn-endpoint`). By default both are the
local ones; `--aws` or `--profile` switches to AWS with boto3's normal
credential resolution (requests to the API are then SigV4-signed, and the
API's URL must be given).

`reconcile` runs a reconciliation sweep: in this process against the local
stack, or with `--aws`/`--profile` by invoking the deployed Reconcile function.

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
from cdcflow.local.config import config_from_env
from cdcflow.local.workflows import lambda_environment
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
    reconcile_findings,
    reconcile_incomplete,
    reconcile_locally,
    reconcile_on_aws,
    stepfunctions_client,
)
from lambdas.reconcile_policy import ReconcileSettingsInvalid

EXIT_OK = 0
EXIT_PIPELINE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_DRIFT_FOUND = 4
EXIT_SWEEP_INCOMPLETE = 5
# States that start and end in one instant: only their end is worth a line.
_INSTANT_STATES = frozenset({"Pass", "Choice", "Succeed", "Fail"})

app = typer.Typer(help="Provision and operate pipelines through the pipelines API.", no_args_is_help=True)
# Lines are not wrapped (tables still fit the width): an error's cause stays on one line, whole.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar="CDCFLOW_API_URL",
        show_default=False,
        help=f"The pipelines API (default: {DEFAULT_API_URL}, the local API; required with --aws/--profile)",
    ),
]
SfnEndpointOption = Annotated[
    str | None,
    typer.Option(
        "--sfn-endpoint",
        envvar="CDCFLOW_SFN_ENDPOINT",
        show_default=False,
        help=f"The Step Functions endpoint (default: {DEFAULT_SFN_ENDPOINT}, the local engine; AWS with --aws/--profile)",
    ),
]
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


def _connect(
    api_url: str | None, sfn_endpoint: str | None, use_aws: bool, profile: str | None, region: str | None
) -> Connection:
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
        raise BadInput(
            f"{path} is not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: {error}"
        ) from None


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
    out.print(
        f"{what} [bold]{escape(response['pipeline_id'])}[/]: "
        + escape(f"execution {response['execution_arn']} ({response['status']})")
    )


@app.command()
def provision(
    spec_file: Annotated[Path, typer.Argument(help="The pipeline spec, JSON or YAML", show_default=False)],
    no_follow: NoFollowOption = False,
    api_url: ApiUrlOption = None,
    sfn_endpoint: SfnEndpointOption = None,
    use_aws: AwsOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
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
    return table


@app.command()
def status(
    pipeline_id: Annotated[
        str | None, typer.Argument(help="One pipeline's details (default: list them all)", show_default=False)
    ] = None,
    status_filter: Annotated[str | None, typer.Option("--status", help="Only pipelines with this status")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's pipelines")] = None,
    api_url: ApiUrlOption = None,
    sfn_endpoint: SfnEndpointOption = None,
    use_aws: AwsOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
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
    api_url: ApiUrlOption = None,
    sfn_endpoint: SfnEndpointOption = None,
    use_aws: AwsOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
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
    api_url: ApiUrlOption = None,
    sfn_endpoint: SfnEndpointOption = None,
    use_aws: AwsOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
) -> None:
    """The events of a pipeline's current execution, as a table."""
    with _exit_codes():
        connection = _connect(api_url, sfn_endpoint, use_aws, profile, region)
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


@app.command()
def teardown(
    pipeline_id: PipelineIdArgument,
    keep_topics: Annotated[bool, typer.Option("--keep-topics", help="Keep the pipeline's Kafka topics")] = False,
    no_follow: NoFollowOption = False,
    api_url: ApiUrlOption = None,
    sfn_endpoint: SfnEndpointOption = None,
    use_aws: AwsOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
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
    api_url: ApiUrlOption = None,
    sfn_endpoint: SfnEndpointOption = None,
    use_aws: AwsOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
) -> None:
    """Approve the step a pipeline's workflow is waiting on (the reboot of an RDS source)."""
    with _exit_codes():
        connection = _connect(api_url, sfn_endpoint, use_aws, profile, region)
    _answer(pipeline_id, True, comment, connection)


@app.command()
def reject(
    pipeline_id: PipelineIdArgument,
    reason: Annotated[str | None, typer.Option("--reason", help="Why; the failure's cause in the workflow")] = None,
    api_url: ApiUrlOption = None,
    sfn_endpoint: SfnEndpointOption = None,
    use_aws: AwsOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
) -> None:
    """Reject the step a pipeline's workflow is waiting on; the workflow rolls the pipeline back."""
    with _exit_codes():
        connection = _connect(api_url, sfn_endpoint, use_aws, profile, region)
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
    """5 when the sweep could not check everything, else 4 when it found drift, else 0."""
    if reconcile_incomplete(report):
        return EXIT_SWEEP_INCOMPLETE
    return EXIT_DRIFT_FOUND if reconcile_findings(report) else EXIT_OK


@app.command()
def reconcile(
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
    use_aws: Annotated[bool, typer.Option("--aws", help="Invoke the deployed Reconcile Lambda function")] = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
) -> None:
    """Run one reconciliation sweep and report pipelines, orphans, stuck executions and errors.

    Restarts FAILED connectors and re-aligns publications; deletes orphans only
    with --repair. Locally it runs in this process against the local stack;
    with --aws/--profile it invokes the deployed Reconcile function and waits
    for its report. Exit codes: 0 healthy; 4 drift found; 5 something could
    not be checked; 3 the registry or the function could not be reached.
    """
    if only and not repair:
        err.print("[red]error:[/] --only chooses which orphans --repair deletes; give --repair too")
        raise typer.Exit(EXIT_BAD_INPUT)
    on_aws = use_aws or profile is not None
    with _exit_codes():
        if on_aws:
            report = _reconcile_on_aws(repair, only, profile, region)
        else:
            report = _reconcile_locally(repair, only)
    if as_json:
        out.print_json(data=report)
    else:
        render_reconcile_report(report, out)
    raise typer.Exit(reconcile_exit_code(report))


def _reconcile_on_aws(repair: bool, only: list[str] | None, profile: str | None, region: str | None) -> dict:
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as error:
        raise BadInput(str(error)) from None
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
    not_up = [service.name for service in cdcflow.local.status(config) if service.state != "up"]
    if not_up:
        raise ServiceUnreachable(
            f"the local stack is not running ({', '.join(not_up)} not up); `cdcflow local up` starts it"
        )
    return lambda_environment(config)
