"""`cdcflow demo`: a pipeline on the local stack, provisioned and used as a user would.

1. Brings the local stack up (PostgreSQL, Kafka, Kafka Connect, DynamoDB
   Local, moto, the local engine and the local API).
2. Creates the demo table `public.orders` in the source database if it is missing.
3. Provisions `examples/orders_pipeline.json` through the local API
   (POST /pipelines) and follows the execution step by step, as `cdcflow
   provision` does. A pipeline that is already ACTIVE is reused: the demo says
   so and goes on (`--fresh` tears it down and provisions it again).
4. Inserts, updates and deletes rows at the source and prints the change
   events as they arrive from Kafka, then the rows at the sink.

With `--sink opensearch` the stack also starts OpenSearch, the pipeline is
`orders_search` (the same table, into an OpenSearch index), and step 6 shows the
index's documents instead of the sink table's rows.

Exit codes are the operator commands' (`cdcflow.operate_cli`): 1 when the
pipeline ends FAILED (naming the step and its error) or the changes do not
arrive, 2 when the source holds an `orders` table of another shape or the API
refuses the spec, 3 when a service cannot be started or reached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import boto3
import psycopg
import requests
import typer
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from psycopg import sql
from rich.console import Console
from rich.markup import escape

import cdcflow.local
from cdcflow.api_client import ApiRefused, PipelinesApi, profile_session
from cdcflow.errors import ServiceFailed, ServiceUnreachable
from cdcflow.history import CAUGHT, FAILED, StepChange, cause_message, follow_execution, stepfunctions_client
from cdcflow.local import connections as local_connections
from cdcflow.local.config import REPO_ROOT, StackConfig
from cdcflow.operate_cli import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_PIPELINE_FAILED,
    EXIT_UNREACHABLE,
    load_spec_file,
    print_step_change,
)
from lambdas.connections import parse_connection
from lambdas.pipeline_request import resolve
from lambdas.spec import PipelineSpec

DEMO_SPEC_FILE = REPO_ROOT / "examples" / "orders_pipeline.json"
DEMO_SCHEMA, DEMO_TABLE = "public", "orders"
# The demo asks as a team would: the requester of the spec's owner, team-orders (cdcflow.local.credentials).
DEMO_PROFILE = "cdcflow-orders-requester"
DEMO_COLUMNS = ("id", "item", "qty")
# Debezium streams within seconds once its connector runs; the sink commits on its own schedule.
CHANGE_TIMEOUT_SECONDS = 120
LIVE_STATUSES = ("ACTIVE", "DEGRADED")
SINKS = ("jdbc", "opensearch")
OPENSEARCH_PIPELINE_ID = "orders_search"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class DemoFailed(Exception):
    """The demo cannot go on; the message says why and `exit_code` how the command ends."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Write:
    """One statement the demo ran at the source, and the row as it left it (None once deleted)."""

    operation: str  # "INSERT", "UPDATE" or "DELETE"
    row_id: int
    row: dict[str, Any] | None


@dataclass(frozen=True)
class ChangeEvent:
    """A Debezium change event of the demo table: `c`, `u` or `d`, with the row before and after."""

    op: str
    row_id: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None


# -- the pieces ----------------------------------------------------------------------


def demo_spec(spec_file: Path = DEMO_SPEC_FILE, sink: str = "jdbc") -> dict[str, Any]:
    """The example spec, as a team writes it: it names the local stack's connections, never an address.

    With `sink="opensearch"` the pipeline is `orders_search` and delivers into the local OpenSearch.
    """
    spec = load_spec_file(spec_file)
    if sink == "opensearch":
        spec["pipeline_id"] = OPENSEARCH_PIPELINE_ID
        spec["sink"] = {"connection": local_connections.OPENSEARCH}
    return spec


def resolved_demo_spec(config: StackConfig, spec: dict[str, Any]) -> PipelineSpec:
    """What the API resolves the demo's spec into, from the connections `local up` registered."""
    registered = {document["name"]: parse_connection(document)
                  for document in local_connections.local_connections(config)}
    return resolve(spec, registered.get)


def ensure_demo_table(source_dsn: str) -> bool:
    """Create `public.orders` in the source database if missing; True if it was created.

    Idempotent. The table gets REPLICA IDENTITY FULL (an existing one too), so
    that update and delete events carry the whole row as it was before the
    change. Raises `DemoFailed` when a table of that name exists without the
    demo's columns.
    """
    table = sql.Identifier(DEMO_SCHEMA, DEMO_TABLE)
    with psycopg.connect(source_dsn, autocommit=True) as conn, conn.transaction():
        columns = [
            name
            for (name,) in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
                [f"{DEMO_SCHEMA}.{DEMO_TABLE}"],
            )
        ]
        missing = [column for column in DEMO_COLUMNS if column not in columns]
        if columns and missing:
            raise DemoFailed(
                f"{DEMO_SCHEMA}.{DEMO_TABLE} exists in the source database without the column(s) "
                f"{', '.join(missing)} the demo writes; drop or rename it first",
                EXIT_BAD_INPUT,
            )
        if not columns:
            conn.execute(
                sql.SQL("CREATE TABLE {} (id serial PRIMARY KEY, item text NOT NULL, qty integer NOT NULL)").format(
                    table
                )
            )
        conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(table))
        return not columns


def write_changes(source_dsn: str) -> list[Write]:
    """Insert three orders, update the first one's quantity, delete the second; the writes in order.

    Each statement commits on its own, so each is one change event.
    """
    table = sql.Identifier(DEMO_SCHEMA, DEMO_TABLE)
    writes: list[Write] = []
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        for item, qty in (("lamp", 1), ("desk", 2), ("chair", 4)):
            row = conn.execute(
                sql.SQL("INSERT INTO {} (item, qty) VALUES (%s, %s) RETURNING {}").format(
                    table, sql.SQL(", ").join(map(sql.Identifier, DEMO_COLUMNS))
                ),
                [item, qty],
            ).fetchone()
            assert row is not None
            writes.append(Write("INSERT", row[0], dict(zip(DEMO_COLUMNS, row, strict=True))))
        first, second = writes[0], writes[1]
        assert first.row is not None
        conn.execute(sql.SQL("UPDATE {} SET qty = %s WHERE id = %s").format(table), [5, first.row_id])
        writes.append(Write("UPDATE", first.row_id, {**first.row, "qty": 5}))
        conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(table), [second.row_id])
        writes.append(Write("DELETE", second.row_id, None))
    return writes


def expected_events(writes: list[Write]) -> list[tuple[str, int]]:
    """The (op, id) of the change event each write should produce, in order."""
    ops = {"INSERT": "c", "UPDATE": "u", "DELETE": "d"}
    return [(ops[write.operation], write.row_id) for write in writes]


def final_rows(writes: list[Write]) -> list[dict[str, Any]]:
    """The rows the writes leave, by id: what the sink should hold for those ids."""
    rows: dict[int, dict[str, Any] | None] = {}
    for write in writes:
        rows[write.row_id] = write.row
    return [row for _, row in sorted(rows.items()) if row is not None]


@contextmanager
def change_consumer(bootstrap_servers: str, topic: str) -> Iterator[KafkaConsumer]:
    """A consumer of every partition of `topic`, positioned at its end: it sees only changes made from now on.

    May block up to a few seconds while the topic's metadata is fetched.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000
    )
    try:
        deadline = time.monotonic() + 30
        while not (partitions := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise DemoFailed(f"Kafka at {bootstrap_servers} has no topic {topic}", EXIT_PIPELINE_FAILED)
            time.sleep(0.5)
        assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_end(*assigned)
        for partition in assigned:
            consumer.position(partition)  # resolves the end offset now, before the writes
        yield consumer
    finally:
        consumer.close()


def parse_change_event(value: bytes | None) -> ChangeEvent | None:
    """A Debezium JSON change event (with its schema envelope); None for a tombstone or another operation."""
    if value is None:
        return None
    document = json.loads(value)
    payload = document.get("payload", document)
    op = payload.get("op")
    if op not in ("c", "u", "d"):
        return None
    row = payload.get("after") or payload.get("before")
    return ChangeEvent(op, row["id"], payload.get("before"), payload.get("after"))


def await_change_events(
    consumer: KafkaConsumer, expected: list[tuple[str, int]], timeout: float
) -> Iterator[ChangeEvent]:
    """The demo rows' change events as they arrive, until each expected one was seen; `DemoFailed` on timeout."""
    ids = {row_id for _, row_id in expected}
    missing = list(expected)
    deadline = time.monotonic() + timeout
    while missing:
        if time.monotonic() > deadline:
            shown = ", ".join(f"{op} id={row_id}" for op, row_id in missing)
            raise DemoFailed(
                f"no change event for {shown} within {timeout:.0f} s; `cdcflow reconcile` shows the connectors' state",
                EXIT_PIPELINE_FAILED,
            )
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                event = parse_change_event(record.value)
                if event is None or event.row_id not in ids:
                    continue
                if (event.op, event.row_id) in missing:
                    missing.remove((event.op, event.row_id))
                yield event


def sink_table(spec: PipelineSpec) -> tuple[str, str]:
    """The sink's (schema, table) for the demo table."""
    return spec.sink.schema, spec.names.sink_table(f"{DEMO_SCHEMA}.{DEMO_TABLE}")


def await_sink_rows(
    sink_dsn: str, spec: PipelineSpec, expected: list[dict[str, Any]], ids: list[int], timeout: float
) -> list[dict[str, Any]]:
    """The sink's rows for `ids` once they equal `expected`; `DemoFailed` naming both on timeout. Polls every second."""
    schema, table = sink_table(spec)
    query = sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s) ORDER BY id").format(
        sql.SQL(", ").join(map(sql.Identifier, DEMO_COLUMNS)), sql.Identifier(schema, table)
    )
    deadline = time.monotonic() + timeout
    with psycopg.connect(sink_dsn, autocommit=True) as conn:
        while True:
            try:
                rows = [dict(zip(DEMO_COLUMNS, row, strict=True)) for row in conn.execute(query, [ids])]
            except psycopg.errors.UndefinedTable:
                rows = []  # the sink connector creates the table with its first record
            if rows == expected:
                return rows
            if time.monotonic() > deadline:
                raise DemoFailed(
                    f"after {timeout:.0f} s the sink table {schema}.{table} holds {rows} for ids {ids}, not {expected}",
                    EXIT_PIPELINE_FAILED,
                )
            time.sleep(1)


def await_index_documents(
    opensearch_url: str, index: str, expected: list[dict[str, Any]], ids: list[int], timeout: float
) -> list[dict[str, Any]]:
    """The index's documents for `ids` once they equal `expected`; `DemoFailed` naming both on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        documents = []
        response = requests.post(
            f"{opensearch_url}/{index}/_search",
            json={"query": {"ids": {"values": [str(i) for i in ids]}}, "size": len(ids)},
            timeout=10,
        )
        if response.status_code == 200:
            hits = response.json()["hits"]["hits"]
            documents = sorted(({c: hit["_source"].get(c) for c in DEMO_COLUMNS} for hit in hits), key=lambda d: d["id"])
        if documents == expected:
            return documents
        if time.monotonic() > deadline:
            raise DemoFailed(
                f"after {timeout:.0f} s the index {index} holds {documents} for ids {ids}, not {expected}",
                EXIT_PIPELINE_FAILED,
            )
        time.sleep(1)


# -- provisioning ------------------------------------------------------------------------


def _follow(stepfunctions: Any, execution_arn: str, what: str) -> None:
    """Print the execution's steps until it ends; `DemoFailed` naming the failed step and its error."""
    failures: list[StepChange] = []

    def report(change: StepChange) -> None:
        print_step_change(change)
        if change.kind == "exited" and change.row.status in (CAUGHT, FAILED):
            failures.append(change)

    outcome = follow_execution(stepfunctions, execution_arn, report)
    if outcome.status == "SUCCEEDED":
        return
    if failures:
        first = failures[0].row
        reason = f"at step {first.name}: {first.error}: {cause_message(first.cause) or ''}".rstrip(": ")
    else:
        reason = f"{outcome.error}: {cause_message(outcome.cause) or ''}".rstrip(": ")
    raise DemoFailed(f"{what} ended {outcome.status} {reason}", EXIT_PIPELINE_FAILED)


def provision_demo_pipeline(api: PipelinesApi, stepfunctions: Any, spec: dict[str, Any], fresh: bool) -> None:
    """Make the demo pipeline ACTIVE through the API, printing each step; reuse it when it already is.

    With `fresh`, a live pipeline is torn down first (keeping nothing) and
    provisioned again; so is one left PROVISIONING by an execution that was
    stopped. Blocks until the executions end.
    """
    pipeline_id = spec["pipeline_id"]
    current = _describe_or_none(api, pipeline_id)
    status = current["status"] if current is not None else None
    if status in LIVE_STATUSES and not fresh:
        out.print(
            f"pipeline [bold]{escape(pipeline_id)}[/] is already {status} (since {current['updated_at']}): "
            "going on to the changes. [dim](`cdcflow demo --fresh` provisions it again)[/]"
        )
        return
    ended = _ended_execution_status(stepfunctions, current["execution_arn"]) if status == "PROVISIONING" else None
    if status in LIVE_STATUSES or ended:
        why = "--fresh" if ended is None else f"its provisioning execution ended {ended} without an outcome"
        out.print(f"tearing down [bold]{escape(pipeline_id)}[/] first ({escape(why)})")
        _follow(stepfunctions, api.teardown(pipeline_id, keep_topics=False)["execution_arn"], "teardown")
        out.print(f"pipeline [bold]{escape(pipeline_id)}[/] is {escape(api.describe(pipeline_id)['status'])}")
    elif status == "DELETING":
        out.print(f"[bold]{escape(pipeline_id)}[/] is being torn down; following that first")
        _follow(stepfunctions, api.describe(pipeline_id)["teardown_execution_arn"], "teardown")
        out.print(f"pipeline [bold]{escape(pipeline_id)}[/] is {escape(api.describe(pipeline_id)['status'])}")
    response = api.provision(spec)
    out.print(escape(f"POST /pipelines -> {response['status']} execution {response['execution_arn']}"))
    _follow(stepfunctions, response["execution_arn"], "provisioning")
    status = api.describe(pipeline_id)["status"]
    if status not in LIVE_STATUSES:
        raise DemoFailed(f"pipeline {pipeline_id} is {status} after execution {response['execution_arn']} ended",
                         EXIT_PIPELINE_FAILED)
    out.print(f"pipeline [bold]{escape(pipeline_id)}[/] is [bold green]{escape(status)}[/]")


def _ended_execution_status(stepfunctions: Any, execution_arn: str | None) -> str | None:
    """The status of execution `execution_arn` once it has closed; None while it runs or before it exists."""
    if not execution_arn:
        return None
    try:
        status = stepfunctions.describe_execution(executionArn=execution_arn)["status"]
    except stepfunctions.exceptions.ExecutionDoesNotExist:
        return None
    return None if status == "RUNNING" else status


def _describe_or_none(api: PipelinesApi, pipeline_id: str) -> dict[str, Any] | None:
    try:
        return api.describe(pipeline_id)
    except ApiRefused as error:
        if error.status == 404:
            return None
        raise


# -- the command -------------------------------------------------------------------------


def _section(title: str) -> None:
    out.print()
    out.rule(f"[bold]{title}", align="left")


def _json(document: dict[str, Any] | None) -> str:
    return json.dumps(document, sort_keys=False, default=str)


def run_demo(fresh: bool, sink: str = "jdbc") -> None:
    """The demo, end to end; raises `DemoFailed` (or a service's error) when it cannot go on."""
    _section("1. the local stack")
    extras = ("opensearch",) if sink == "opensearch" else ()
    try:
        stack = cdcflow.local.up(progress=lambda message: out.print(f"[dim]{escape(message)}[/]"), extras=extras)
    except cdcflow.local.LocalStackError as error:
        raise DemoFailed(str(error), EXIT_UNREACHABLE) from None
    endpoints = stack.endpoints
    out.print(
        escape(
            f"API {endpoints.api.url}, Step Functions engine {endpoints.engine.url}, "
            f"Kafka {endpoints.kafka.bootstrap_servers}, Connect {endpoints.connect.url}"
        )
    )

    _section("2. the source table")
    created = ensure_demo_table(endpoints.postgres.source_dsn())
    out.print(
        f"{DEMO_SCHEMA}.{DEMO_TABLE} in database {endpoints.postgres.source_database}: "
        + ("created" if created else "already there")
        + ", with REPLICA IDENTITY FULL so that updates and deletes carry the row as it was"
    )

    _section("3. provisioning the pipeline")
    spec_document = demo_spec(sink=sink)
    spec = resolved_demo_spec(stack.config, spec_document)
    api = PipelinesApi(endpoints.api.url, session=profile_session(
        DEMO_PROFILE, credentials_file=endpoints.api.credentials_file, region=endpoints.aws.region))
    stepfunctions = stepfunctions_client(endpoints.engine.url, boto3.Session())
    out.print(escape(f"spec {DEMO_SPEC_FILE.relative_to(REPO_ROOT)}: source {spec.source.connection}, "
                     f"cluster {spec.kafka.cluster}, sink {spec.sink.connection} (connections `local up` registered)"))
    provision_demo_pipeline(api, stepfunctions, spec_document, fresh)

    topic = spec.names.table_topic(f"{DEMO_SCHEMA}.{DEMO_TABLE}")
    with change_consumer(endpoints.kafka.bootstrap_servers, topic) as consumer:
        _section("4. changes at the source")
        writes = write_changes(endpoints.postgres.source_dsn())
        for write in writes:
            shown = _json({k: v for k, v in write.row.items() if k != "id"}) if write.row else ""
            out.print(escape(f"  {write.operation:<6} id={write.row_id} {shown}".rstrip()))

        _section(f"5. change events from Kafka topic {topic}")
        out.print("[dim]  op: c = create (insert), u = update, d = delete[/]")
        for event in await_change_events(consumer, expected_events(writes), CHANGE_TIMEOUT_SECONDS):
            out.print(
                escape(f"  {event.op}  id={event.row_id}  before={_json(event.before)}  after={_json(event.after)}")
            )

    ids = sorted({write.row_id for write in writes})
    if sink == "opensearch":
        assert endpoints.opensearch is not None
        _section(f"6. documents in the OpenSearch index {topic} ({endpoints.opensearch.url})")
        rows = await_index_documents(endpoints.opensearch.url, topic, final_rows(writes), ids, CHANGE_TIMEOUT_SECONDS)
        for row in rows:
            out.print(escape(f"  _id={row['id']} {_json(row)}"))
    else:
        schema, table = sink_table(spec)
        _section(f"6. rows at the sink ({schema}.{table} in database {endpoints.postgres.sink_database})")
        rows = await_sink_rows(endpoints.postgres.sink_dsn(), spec, final_rows(writes), ids, CHANGE_TIMEOUT_SECONDS)
        for row in rows:
            out.print(escape("  " + " ".join(f"{column}={row[column]}" for column in DEMO_COLUMNS)))
    deleted = sorted(set(ids) - {row["id"] for row in rows})
    out.print(escape(f"  (id={', '.join(map(str, deleted))} deleted at the source: gone from the sink too)"))

    _section("next")
    pipeline_id = spec.pipeline_id
    for command, what in (
        ("cdcflow status", "every pipeline and its status"),
        (f"cdcflow status {pipeline_id}", "one pipeline: step, last error, execution"),
        (f"cdcflow history {pipeline_id}", "the provisioning execution's events"),
        ("cdcflow reconcile", "compare what should exist with what does"),
        (f"cdcflow teardown {pipeline_id}", "remove the pipeline: connectors, slot, publication, user, topics"),
        ("cdcflow local down", "stop the local stack"),
    ):
        out.print(f"  [bold]{escape(command):<32}[/] {escape(what)}")


def demo(
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Tear the demo pipeline down first if it exists, and provision it again")
    ] = False,
    sink: Annotated[
        str, typer.Option("--sink", help="Where the demo pipeline delivers: jdbc (PostgreSQL) or opensearch")
    ] = "jdbc",
) -> None:
    """Bring up the local stack, provision the demo pipeline through the local API, and show changes flowing.

    Re-running reuses the ACTIVE demo pipeline (it says so) and shows new
    changes; --fresh provisions it from scratch.
    """
    if sink not in SINKS:
        err.print(f"[red]--sink {escape(sink)}:[/] not a sink the demo knows (choose {' or '.join(SINKS)})")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        run_demo(fresh, sink)
    except DemoFailed as error:
        err.print(f"[red]demo failed:[/] {escape(str(error))}")
        raise typer.Exit(error.exit_code) from None
    except ApiRefused as error:
        err.print(f"[red]the API refused ({error.status}):[/] {escape(str(error))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (ServiceUnreachable, ServiceFailed, KafkaError, psycopg.OperationalError) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(EXIT_UNREACHABLE) from None
    raise typer.Exit(EXIT_OK)
