"""Connector readiness: trace summaries, and the check the connector wait-loops run."""

import pytest

from lambdas.connect.deploy import check_connector, connector_readiness, delete_connector, put_connector
from lambdas.connect.errors import ConnectorFailed, ConnectorNotFound, ConnectorNotReady
from lambdas.connect.redaction import MASK, redact
from lambdas.connect.traces import MAX_SUMMARY_CHARS, summarise_trace
from lambdas.errors import ConnectUnavailable
from lambdas.wait_loop import Schedule

SCHEDULE = Schedule(first=0, base=1, growth=2, cap=30, attempts=20)


PASSWORD = "Sup3r-secret"

DEBEZIUM_TRACE = f"""org.apache.kafka.connect.errors.ConnectException: An exception occurred in the change event producer. This connector will be stopped.
\tat io.debezium.pipeline.ErrorHandler.setProducerThrowable(ErrorHandler.java:67)
\tat io.debezium.connector.postgresql.PostgresStreamingChangeEventSource.execute(PostgresStreamingChangeEventSource.java:180)
\tat java.base/java.lang.Thread.run(Thread.java:840)
Caused by: io.debezium.DebeziumException: Couldn't obtain encoding for database source (password={PASSWORD})
\tat io.debezium.connector.postgresql.connection.PostgresConnection.getDatabaseCharset(PostgresConnection.java:580)
\t... 12 more
Caused by: org.postgresql.util.PSQLException: FATAL: password authentication failed for user "cdcflow_orders"
\tat org.postgresql.core.v3.ConnectionFactoryImpl.doAuthentication(ConnectionFactoryImpl.java:693)
\t... 20 more
"""


def test_trace_summary_keeps_the_exception_and_its_causes_without_frames():
    summary = summarise_trace(DEBEZIUM_TRACE)
    assert summary.startswith("org.apache.kafka.connect.errors.ConnectException: An exception occurred")
    assert "caused by: io.debezium.DebeziumException" in summary
    assert summary.endswith('FATAL: password authentication failed for user "cdcflow_orders"')
    assert "\tat " not in summary and "more" not in summary
    assert PASSWORD not in summary


def test_a_long_trace_keeps_the_outer_exception_and_the_root_cause():
    causes = "".join(f"Caused by: java.lang.RuntimeException: layer {i} {'x' * 80}\n\tat a.b(C.java:1)\n" for i in range(10))
    trace = "org.example.Outer: top\n\tat a.b(C.java:1)\n" + causes + "Caused by: java.net.ConnectException: Connection refused\n"
    summary = summarise_trace(trace)
    assert len(summary) <= MAX_SUMMARY_CHARS
    assert summary.startswith("org.example.Outer: top")
    assert summary.endswith("java.net.ConnectException: Connection refused")


def test_an_overlong_single_line_is_cut_to_the_limit():
    assert len(summarise_trace("java.lang.Error: " + "y" * 2000)) == MAX_SUMMARY_CHARS


@pytest.mark.parametrize(
    "text",
    [
        f"database.password={PASSWORD}",
        f'"connection.password": "{PASSWORD}"',
        f"Invalid value {PASSWORD} for configuration database.password: bad",
        f"PASSWORD : {PASSWORD}",
    ],
)
def test_redaction_masks_password_settings_by_shape(text):
    redacted = redact(text)
    assert PASSWORD not in redacted and MASK in redacted


def test_redaction_masks_known_values_anywhere():
    assert redact(f"jdbc:postgresql://u:{PASSWORD}@h/db", [PASSWORD]) == f"jdbc:postgresql://u:{MASK}@h/db"


class FakeConnect:
    """Stands in for ConnectClient: a stored config and a status per connector."""

    def __init__(self):
        self.configs: dict[str, dict] = {}
        self.statuses: dict[str, dict] = {}
        self.puts: list[str] = []
        # Connect removes a deleted connector asynchronously: it stays visible for this many reads.
        self.reads_until_deleted: dict[str, int] = {}
        self.visible_after_delete = 0

    def get_config(self, name):
        if name in self.reads_until_deleted:
            self.reads_until_deleted[name] -= 1
            if self.reads_until_deleted[name] < 0:
                del self.reads_until_deleted[name], self.configs[name]
        return self.configs.get(name)

    def put_config(self, name, config):
        self.puts.append(name)
        self.configs[name] = {"name": name, **config}
        return {"name": name, "config": self.configs[name], "tasks": []}

    def get_status(self, name):
        if name not in self.statuses:
            raise ConnectorNotFound(f"No status found for connector {name}")
        return self.statuses[name]

    def delete(self, name):
        if name not in self.configs:
            return False
        self.reads_until_deleted.setdefault(name, self.visible_after_delete)
        return True


def status(connector_state, *task_states, trace=None):
    tasks = [{"id": i, "state": state, "worker_id": "w:8083"} for i, state in enumerate(task_states)]
    if trace:
        tasks[-1]["trace"] = trace
    return {"name": "c", "connector": {"state": connector_state, "worker_id": "w:8083"}, "tasks": tasks, "type": "source"}


def test_put_connector_creates_then_reports_no_change_for_the_same_config():
    connect = FakeConnect()
    config = {"connector.class": "X", "tasks.max": "1"}

    first = put_connector(connect, "c", config)
    second = put_connector(connect, "c", config)

    assert first == {"connector": "c", "changed": True, "created": True}
    assert second == {"connector": "c", "changed": False, "created": False}
    assert connect.puts == ["c"]  # the second run sent nothing, so nothing restarted


def test_put_connector_restarts_an_unchanged_connector_that_failed():
    """Its references may resolve now (a secret restored or rotated), so the worker must read them again."""
    connect = FakeConnect()
    config = {"connector.class": "X", "database.password": "${secretsmanager:cdcflow/c/replication:password}"}
    put_connector(connect, "c", config)
    connect.statuses["c"] = status("FAILED", "FAILED", trace="ConfigException: secret cdcflow/c/replication ...")
    restarts = []
    connect.restart = lambda name, include_tasks, only_failed: restarts.append((name, include_tasks, only_failed))

    assert put_connector(connect, "c", config) == {"connector": "c", "changed": False, "created": False,
                                                   "restarted": True}
    assert restarts == [("c", True, True)] and connect.puts == ["c"]


def test_put_connector_reconfigures_a_connector_whose_config_differs():
    connect = FakeConnect()
    put_connector(connect, "c", {"tasks.max": "1"})
    assert put_connector(connect, "c", {"tasks.max": "2"}) == {"connector": "c", "changed": True, "created": False}
    assert connect.configs["c"]["tasks.max"] == "2"


@pytest.mark.parametrize(
    ("connector_status", "expected"),
    [
        (status("RUNNING", "RUNNING"), "RUNNING"),
        (status("RUNNING"), "PENDING"),  # no task started yet
        (status("RUNNING", "RUNNING", "UNASSIGNED"), "PENDING"),
        (status("UNASSIGNED"), "PENDING"),
        (status("RUNNING", "RESTARTING"), "PENDING"),
        (status("RUNNING", "FAILED", trace=DEBEZIUM_TRACE), "FAILED"),
        (status("FAILED"), "FAILED"),
    ],
)
def test_readiness_state(connector_status, expected):
    connect = FakeConnect()
    connect.configs["c"], connect.statuses["c"] = {"name": "c"}, connector_status
    assert connector_readiness(connect, "c").state == expected


def test_a_connector_put_but_without_status_yet_is_pending():
    connect = FakeConnect()
    connect.configs["c"] = {"name": "c"}
    assert connector_readiness(connect, "c").state == "PENDING"


def test_a_connector_that_does_not_exist_is_not_found():
    with pytest.raises(ConnectorNotFound):
        connector_readiness(FakeConnect(), "c")


def test_check_counts_attempts_and_returns_the_next_wait():
    connect = FakeConnect()
    connect.configs["c"], connect.statuses["c"] = {"name": "c"}, status("RUNNING")

    pending = check_connector(connect, "c", attempt=0, schedule=SCHEDULE)
    connect.statuses["c"] = status("RUNNING", "RUNNING")
    running = check_connector(connect, "c", attempt=pending["attempt"], schedule=SCHEDULE)

    assert pending == {"ready": False, "attempt": 1, "wait_seconds": 1, "state": "PENDING"}
    assert running == {"ready": True, "attempt": 2, "wait_seconds": 2, "state": "RUNNING"}


def test_check_settles_until_the_connector_runs_within_its_settle_time():
    connect = FakeConnect()
    connect.configs["c"], connect.statuses["c"] = {"name": "c"}, status("RUNNING")
    naps = []

    def nap(seconds):
        naps.append(seconds)
        if len(naps) == 3:
            connect.statuses["c"] = status("RUNNING", "RUNNING")

    settling = Schedule(first=0, base=1, growth=2, cap=30, attempts=20, settle_seconds=2.0, poll_interval=0.1)
    result = check_connector(connect, "c", attempt=0, schedule=settling, sleep=nap)

    assert result["ready"] is True and result["attempt"] == 1
    assert naps == [0.1, 0.1, 0.1]


def test_check_fails_with_a_redacted_trace_summary_when_a_task_failed():
    connect = FakeConnect()
    connect.configs["c"], connect.statuses["c"] = {"name": "c"}, status("RUNNING", "FAILED", trace=DEBEZIUM_TRACE)

    with pytest.raises(ConnectorFailed) as caught:
        check_connector(connect, "c", attempt=3, schedule=SCHEDULE)

    message = str(caught.value)
    assert message.startswith("connector c failed: task 0: org.apache.kafka.connect.errors.ConnectException")
    assert "password authentication failed" in message
    assert PASSWORD not in message


def test_check_gives_up_after_the_last_attempt():
    connect = FakeConnect()
    connect.configs["c"], connect.statuses["c"] = {"name": "c"}, status("RUNNING", "UNASSIGNED")

    last = SCHEDULE.attempts
    assert check_connector(connect, "c", attempt=last - 2, schedule=SCHEDULE)["ready"] is False
    with pytest.raises(ConnectorNotReady, match=f"after {last} checks: connector RUNNING, task 0 UNASSIGNED"):
        check_connector(connect, "c", attempt=last - 1, schedule=SCHEDULE)


def test_delete_waits_until_the_connector_is_gone_and_a_second_delete_is_a_no_op():
    connect = FakeConnect()
    connect.configs["c"] = {"name": "c"}
    connect.visible_after_delete = 2
    naps = []

    assert delete_connector(connect, "c", sleep=naps.append) is True
    assert len(naps) == 2
    assert delete_connector(connect, "c", sleep=naps.append) is False


def test_delete_waits_out_the_rebalance_it_causes():
    connect = FakeConnect()
    connect.configs["c"] = {"name": "c"}
    answers = iter([ConnectUnavailable("GET /connectors/c/config -> 409: rebalance in progress"), None])

    def get_config(name):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    connect.get_config = get_config
    assert delete_connector(connect, "c", sleep=lambda _: None) is True


def test_delete_that_never_takes_effect_is_transient():
    connect = FakeConnect()
    connect.configs["c"] = {"name": "c"}
    connect.visible_after_delete = 1_000
    ticks = iter(range(100))
    with pytest.raises(ConnectUnavailable, match="still present"):
        delete_connector(connect, "c", timeout_seconds=5, sleep=lambda _: None, clock=lambda: next(ticks))
