"""The building blocks of a step table: functions, task rows, wait-loops and the plain states between them.

A workflow is a list of rows. Each row renders to one Amazon States Language
state, except a `WaitLoop`, which renders to the four states of a readiness
loop (Start -> Wait -> Check -> Ready?). Rows follow each other unless a row
says where it goes next; forward tasks send their failures where the
workflow's `on_error` says (the compensation chain, or a final failure step).

Nothing here knows about AWS or the local engine: `statemachines.render`
turns a `Workflow` into the committed `*.asl.json`, and
`statemachines.catalogue` collects the functions the rows name. A wait-loop's
`Schedule` is the one its check applies (`lambdas/wait_loop.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambdas.wait_loop import Schedule

# Named permissions a function may need; infra/ turns each into the narrowest grant.
REGISTRY_READ = "registry:read"
REGISTRY_WRITE = "registry:write"
REGISTRY_STEP = "registry:step"  # record the step a workflow is in (current_step only)
PRINCIPALS_READ = "principals:read"  # the principals table: the caller's teams and roles
CONNECTIONS_WRITE = "connections:write"  # the connections table: admins register, every request resolves
IDEMPOTENCY = "idempotency"
SECRETS_READ = "secrets:read"  # the admin secrets named in pipeline specs
SECRETS_WRITE = "secrets:write"  # create (or restore) the replication secrets
SECRETS_DELETE = "secrets:delete"  # schedule a replication secret's deletion
SECRETS_LIST = "secrets:list"  # list the replication secrets (names only)
RDS_PARAMETERS = "rds:parameters"  # copy the instance's parameter group, set rds.logical_replication, attach it
RDS_RESTORE = "rds:restore"  # attach the instance's original group again and delete cdcflow's copy
RDS_REBOOT = "rds:reboot"  # reboot the source instance to apply its parameters
RDS_DESCRIBE = "rds:describe"
RECONCILE_LEASE = "reconcile:lease"  # the one item of the idempotency table that keeps sweeps apart
STATES_START = "states:start"
STATES_STOP = "states:stop"  # stop a provisioning that is cancelled
STATES_READ = "states:read"
STATES_TASK_TOKEN = "states:task-token"
METRICS = "cloudwatch:metrics"
ALARMS_WRITE = "cloudwatch:alarms"  # put and delete the pipelines' alarms (names cdcflow-pipeline-*)
ALARMS_READ = "cloudwatch:alarms-read"  # describe the pipelines' alarms
VPC_NETWORK = "network:source"  # reaches PostgreSQL, Kafka and Connect

FUNCTION_NAME_PREFIX = "cdcflow-"
# What every step's payload carries: the spec, and the execution and state that key its idempotency record.
STEP_PAYLOAD = {"spec.$": "$.spec", "execution_id.$": "$$.Execution.Id", "state_name.$": "$$.State.Name"}


@dataclass(frozen=True)
class Function:
    """One Lambda function: its handler, what it may touch, and how long it may run."""

    key: str
    handler: str
    description: str
    permissions: frozenset[str] = frozenset()
    timeout_seconds: int = 60
    memory_mb: int = 256

    @property
    def function_name(self) -> str:
        kebab = "".join(f"-{c.lower()}" if c.isupper() else c for c in self.key).lstrip("-")
        return FUNCTION_NAME_PREFIX + kebab

    @property
    def substitution(self) -> str:
        """The `${...}` placeholder the definitions use for this function's ARN."""
        return f"{self.key}FunctionArn"


def step(key: str, handler: str, description: str, *permissions: str, timeout: int = 60) -> Function:
    """A workflow step's function: its handler lives in `lambdas.steps`, keeps idempotency records and records
    itself as the pipeline's current step."""
    return Function(
        key=key,
        handler=f"lambdas.steps.{handler}",
        description=description,
        permissions=frozenset({IDEMPOTENCY, METRICS, REGISTRY_STEP, *permissions}),
        timeout_seconds=timeout,
    )


@dataclass(frozen=True)
class Catch:
    """Where a task's failure goes, and where the error is kept (the original input stays for what follows)."""

    next: str
    result_path: str


@dataclass(frozen=True)
class Reject:
    """A failure that ends the workflow at once, before anything exists to undo.

    It renders as a Fail state right after its task, reading the error kept at `result_path`.
    """

    name: str
    comment: str
    result_path: str = "$.error"


@dataclass(frozen=True)
class Task:
    """A task state that invokes `function` with the step payload (plus `parameters`).

    `retry` names policies of `retry_policies.json`, in the order they are tried.
    `undo` is the compensation this step registers: the workflow runs the
    registered compensations in reverse order when a later step fails.
    `approval_timeout_seconds` makes the task wait for a task token (a person's
    decision) for at most that long, instead of for the function's answer.
    """

    name: str
    function: Function
    retry: tuple[str, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    undo: str | None = None
    comment: str | None = None
    result_selector: Mapping[str, Any] | None = None
    result_path: str | None = None
    catch: Catch | Reject | None = None
    next: str | None = None
    approval_timeout_seconds: int | None = None


@dataclass(frozen=True)
class WaitLoop:
    """A readiness loop: Start<name> -> WaitFor<name> -> Check<name> -> <name>Ready?

    The check reports `{"ready", "attempt", "wait_seconds", ...}` into
    `$.loops.<name>`; the Choice goes on when ready and waits again
    otherwise. The check raises `gives_up` (an error of that name) after the
    schedule's last attempt, which the check's Catch routes like any failure.
    """

    name: str
    check: Task
    schedule: Schedule
    gives_up: str
    next: str | None = None

    @property
    def start_state(self) -> str:
        return f"Start{self.name}"

    @property
    def wait_state(self) -> str:
        return f"WaitFor{self.name}"

    @property
    def choice_state(self) -> str:
        return f"{self.name}Ready?"

    @property
    def loop_path(self) -> str:
        return f"$.loops.{self.name}"


@dataclass(frozen=True)
class Choice:
    """A Choice state; `choices` are Amazon States Language choice rules, written as they render."""

    name: str
    choices: Sequence[Mapping[str, Any]]
    default: str
    comment: str | None = None


@dataclass(frozen=True)
class Pass:
    name: str
    parameters: Mapping[str, Any] | None = None
    result_path: str | None = None
    comment: str | None = None
    next: str | None = None


@dataclass(frozen=True)
class Fail:
    name: str
    error_path: str
    cause_path: str
    comment: str | None = None


@dataclass(frozen=True)
class Succeed:
    name: str
    output_path: str | None = None


Row = Task | WaitLoop | Choice | Pass | Fail | Succeed


@dataclass(frozen=True)
class Compensate:
    """Forward failures run the compensations that the steps registered, newest first, then `then`.

    Each compensation's result goes to `$.compensations.<name>`, its error to
    `$.compensation_errors.<name>`, and a failed compensation never stops
    the chain. Every forward task without its own Catch fails to the first
    compensation, with its error in `$.errors.<name>`.
    """

    compensations: Mapping[str, Task]
    then: Sequence[Row]


@dataclass(frozen=True)
class StopAt:
    """Forward failures go straight to `state` (the first row of `then`), with the error in `$.errors.<name>`."""

    then: Sequence[Row]

    @property
    def state(self) -> str:
        return self.then[0].name


@dataclass(frozen=True)
class Workflow:
    """One state machine, declared once. `file_stem` names its rendered `<file_stem>.asl.json`."""

    name: str
    file_stem: str
    comment: str
    timeout_seconds: int
    steps: Sequence[Row]
    on_error: Compensate | StopAt

    def tasks(self) -> list[Task]:
        """Every task state, in the order the definition lists them."""
        return self.tasks_of(self.all_rows())

    def all_rows(self) -> list[Row]:
        rows = list(self.steps)
        if isinstance(self.on_error, Compensate):
            rows += list(self.compensation_chain())
        return rows + list(self.on_error.then)

    def compensation_chain(self) -> list[Task]:
        """The registered compensations in the order they run: the last step's undo first."""
        if not isinstance(self.on_error, Compensate):
            return []
        order: list[str] = []
        for task in self.tasks_of(self.steps):
            if task.undo and task.undo not in order:
                order.append(task.undo)
        missing = [name for name in order if name not in self.on_error.compensations]
        if missing:
            raise ValueError(f"{self.name}: no compensation declared for {', '.join(missing)}")
        return [self.on_error.compensations[name] for name in reversed(order)]

    @staticmethod
    def tasks_of(rows: Sequence[Row]) -> list[Task]:
        return [row if isinstance(row, Task) else row.check for row in rows if isinstance(row, Task | WaitLoop)]
