"""The follow logic: execution history events -> step rows, outcomes and live changes."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from cdcflow.history import (
    ABORTED,
    CAUGHT,
    FAILED,
    RUNNING,
    SUCCEEDED,
    cause_message,
    event_rows,
    execution_outcome,
    fetch_new_events,
    follow_execution,
    step_rows,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=timezone.utc)
EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:ProvisionPipeline:orders-0123456789abcdef"
LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:cdcflow-"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def entered(kind: str, name: str) -> dict:
    return {"type": f"{kind}StateEntered", "stateEnteredEventDetails": {"name": name, "input": "{}"}}


def exited(kind: str, name: str) -> dict:
    return {"type": f"{kind}StateExited", "stateExitedEventDetails": {"name": name, "output": "{}"}}


def lambda_cause(message: str, error_type: str) -> str:
    return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": ["  File ..."]})


# A ProvisionPipeline run as GetExecutionHistory returns it: CreateSlot fails once with a
# transient error and is retried, CreateTopics fails for good and is caught, the
# compensations run, and the execution ends in a Fail state.
RECORDED = [
    ({"type": "ExecutionStarted", "executionStartedEventDetails": {"input": "{}", "roleArn": "arn:role"}}, 0.0),
    (entered("Task", "CreatePublication"), 0.05),
    ({"type": "LambdaFunctionScheduled",
      "lambdaFunctionScheduledEventDetails": {"resource": LAMBDA + "create-publication", "input": "{}"}}, 0.06),
    ({"type": "LambdaFunctionStarted"}, 0.08),
    ({"type": "LambdaFunctionSucceeded", "lambdaFunctionSucceededEventDetails": {"output": "{}"}}, 0.9),
    (exited("Task", "CreatePublication"), 0.91),
    (entered("Task", "CreateSlot"), 0.92),
    ({"type": "LambdaFunctionScheduled",
      "lambdaFunctionScheduledEventDetails": {"resource": LAMBDA + "create-slot", "input": "{}"}}, 0.93),
    ({"type": "LambdaFunctionStarted"}, 0.95),
    ({"type": "LambdaFunctionFailed", "lambdaFunctionFailedEventDetails": {
        "error": "DatabaseUnavailable", "cause": lambda_cause("source closed the connection", "DatabaseUnavailable")}},
     1.5),
    ({"type": "LambdaFunctionScheduled",
      "lambdaFunctionScheduledEventDetails": {"resource": LAMBDA + "create-slot", "input": "{}"}}, 3.5),
    ({"type": "LambdaFunctionStarted"}, 3.52),
    ({"type": "LambdaFunctionSucceeded", "lambdaFunctionSucceededEventDetails": {"output": "{}"}}, 4.0),
    (exited("Task", "CreateSlot"), 4.01),
    (entered("Task", "CreateTopics"), 4.02),
    ({"type": "LambdaFunctionScheduled",
      "lambdaFunctionScheduledEventDetails": {"resource": LAMBDA + "create-topics", "input": "{}"}}, 4.03),
    ({"type": "LambdaFunctionStarted"}, 4.05),
    ({"type": "LambdaFunctionFailed", "lambdaFunctionFailedEventDetails": {
        "error": "TopicConfigRejected", "cause": lambda_cause("retention.ms is below the broker minimum",
                                                             "TopicConfigRejected")}}, 4.5),
    (exited("Task", "CreateTopics"), 4.51),
    (entered("Wait", "WaitBeforeCheck"), 4.52),
    (exited("Wait", "WaitBeforeCheck"), 6.52),
    (entered("Choice", "SlotCreated?"), 6.53),
    (exited("Choice", "SlotCreated?"), 6.53),
    (entered("Task", "DropSlot"), 6.54),
    ({"type": "LambdaFunctionScheduled",
      "lambdaFunctionScheduledEventDetails": {"resource": LAMBDA + "drop-slot", "input": "{}"}}, 6.55),
    ({"type": "LambdaFunctionStarted"}, 6.56),
    ({"type": "LambdaFunctionSucceeded", "lambdaFunctionSucceededEventDetails": {"output": "{}"}}, 7.0),
    (exited("Task", "DropSlot"), 7.01),
    (entered("Fail", "ProvisioningFailed"), 7.02),
    ({"type": "ExecutionFailed", "executionFailedEventDetails": {
        "error": "TopicConfigRejected", "cause": "retention.ms is below the broker minimum"}}, 7.03),
]


def recorded_history(upto: int | None = None) -> list[dict]:
    events = []
    for number, (event, seconds) in enumerate(RECORDED[:upto], start=1):
        events.append({**event, "id": number, "previousEventId": number - 1, "timestamp": at(seconds)})
    return events


def test_rows_follow_each_state_visit_with_status_attempts_and_timing():
    rows = step_rows(recorded_history())

    assert [(row.name, row.state_type, row.status) for row in rows] == [
        ("CreatePublication", "Task", SUCCEEDED),
        ("CreateSlot", "Task", SUCCEEDED),
        ("CreateTopics", "Task", CAUGHT),
        ("WaitBeforeCheck", "Wait", SUCCEEDED),
        ("SlotCreated?", "Choice", SUCCEEDED),
        ("DropSlot", "Task", SUCCEEDED),
        ("ProvisioningFailed", "Fail", FAILED),
    ]
    create_slot = rows[1]
    assert create_slot.attempts == 2
    assert create_slot.error is None, "a failed attempt that was retried successfully leaves no error"
    assert create_slot.duration == timedelta(seconds=4.01 - 0.92)
    assert rows[2].error == "TopicConfigRejected"
    assert cause_message(rows[2].cause) == "retention.ms is below the broker minimum"
    assert rows[3].duration == timedelta(seconds=2)
    assert rows[-1].exited_at == at(7.03)


def test_outcome_is_running_until_a_closing_event_and_then_carries_error_and_cause():
    assert execution_outcome(recorded_history(upto=20)).status == "RUNNING"
    assert not execution_outcome(recorded_history(upto=20)).closed

    outcome = execution_outcome(recorded_history())
    assert outcome.closed
    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED", "TopicConfigRejected", "retention.ms is below the broker minimum")


def test_a_task_in_flight_is_running_and_shows_its_last_failed_attempt():
    rows = step_rows(recorded_history(upto=10))  # CreateSlot's first attempt has just failed

    assert rows[-1].name == "CreateSlot"
    assert rows[-1].status == RUNNING
    assert rows[-1].exited_at is None and rows[-1].duration is None
    assert rows[-1].error == "DatabaseUnavailable"


def test_open_states_take_the_fate_of_an_aborted_execution():
    events = recorded_history(upto=8) + [
        {"id": 9, "previousEventId": 8, "timestamp": at(2.0), "type": "ExecutionAborted",
         "executionAbortedEventDetails": {}},
    ]

    rows = step_rows(events)

    assert rows[-1].status == ABORTED
    assert rows[-1].exited_at == at(2.0)
    assert execution_outcome(events).status == "ABORTED"


def test_cause_message_prefers_a_lambda_errors_message():
    assert cause_message(lambda_cause("slot is busy", "SlotBusy")) == "slot is busy"
    assert cause_message("plain words") == "plain words"
    assert cause_message('["not", "an", "object"]') == '["not", "an", "object"]'
    assert cause_message(None) is None


def test_event_rows_attribute_events_to_their_state_and_time_them_from_the_start():
    rows = event_rows(recorded_history())

    failed_attempt = next(row for row in rows if row.event_type == "LambdaFunctionFailed")
    assert failed_attempt.state == "CreateSlot"
    assert failed_attempt.detail == "DatabaseUnavailable: source closed the connection"
    assert failed_attempt.elapsed == timedelta(seconds=1.5)
    assert rows[0].state is None and rows[-1].state is None  # execution events belong to no state
    assert [row.event_id for row in rows] == list(range(1, len(RECORDED) + 1))


class RecordedStepFunctions:
    """GetExecutionHistory over a recorded history that grows by a few events per call.

    Serves pages newest first, as `reverseOrder=True` asks, to check the
    follower's incremental reads.
    """

    class meta:
        endpoint_url = "http://127.0.0.1:8600"

    def __init__(self, events: list[dict], growth: int) -> None:
        self.events = events
        self.visible = 0
        self.growth = growth
        self.calls: list[dict] = []

    def get_execution_history(self, **arguments):
        self.calls.append(arguments)
        assert arguments["executionArn"] == EXECUTION
        assert arguments["reverseOrder"] is True
        if "nextToken" not in arguments:
            self.visible = min(len(self.events), self.visible + self.growth)
        newest_first = self.events[:self.visible][::-1]
        start = int(arguments.get("nextToken", 0))
        page = newest_first[start:start + arguments["maxResults"]]
        more = start + arguments["maxResults"] < len(newest_first)
        return {"events": page, **({"nextToken": str(start + arguments["maxResults"])} if more else {})}


def test_follow_reports_each_change_once_in_order_until_the_execution_closes():
    stepfunctions = RecordedStepFunctions(recorded_history(), growth=4)
    changes = []
    sleeps = []

    outcome = follow_execution(stepfunctions, EXECUTION, changes.append, poll_seconds=2.5, sleep=sleeps.append)

    assert outcome.status == "FAILED" and outcome.error == "TopicConfigRejected"
    described = [(change.kind, change.row.name) for change in changes]
    assert described == [
        ("entered", "CreatePublication"), ("exited", "CreatePublication"),
        ("entered", "CreateSlot"), ("retried", "CreateSlot"), ("exited", "CreateSlot"),
        ("entered", "CreateTopics"), ("exited", "CreateTopics"),
        ("entered", "WaitBeforeCheck"), ("exited", "WaitBeforeCheck"),
        ("entered", "SlotCreated?"), ("exited", "SlotCreated?"),
        ("entered", "DropSlot"), ("exited", "DropSlot"),
        ("entered", "ProvisioningFailed"), ("exited", "ProvisioningFailed"),
    ]
    exits = {change.row.name: change.row for change in changes if change.kind == "exited"}
    assert exits["CreateTopics"].status == CAUGHT
    assert exits["ProvisioningFailed"].status == FAILED
    polls = -(-len(RECORDED) // 4)
    assert len(sleeps) == polls - 1 and set(sleeps) == {2.5}


def test_fetching_new_events_reads_only_past_the_last_seen_id_across_pages():
    stepfunctions = RecordedStepFunctions(recorded_history(), growth=len(RECORDED))

    first = fetch_new_events(stepfunctions, EXECUTION, after_id=0)
    assert [event["id"] for event in first] == list(range(1, len(RECORDED) + 1))

    stepfunctions.calls.clear()
    later = fetch_new_events(stepfunctions, EXECUTION, after_id=len(RECORDED) - 3)
    assert [event["id"] for event in later] == [len(RECORDED) - 2, len(RECORDED) - 1, len(RECORDED)]
    assert len(stepfunctions.calls) == 1


def test_a_long_wait_loop_is_read_in_pages_and_every_visit_is_a_row():
    loop = [(entered("Wait", "WaitForConnector"), 0.0), (exited("Wait", "WaitForConnector"), 1.0),
            (entered("Task", "CheckConnector"), 1.0), (exited("Task", "CheckConnector"), 1.5)]
    events = [{**event, "id": number, "previousEventId": number - 1, "timestamp": at(number + seconds)}
              for number, (event, seconds) in enumerate(loop * 60, start=1)]
    stepfunctions = RecordedStepFunctions(events, growth=len(events))

    fetched = fetch_new_events(stepfunctions, EXECUTION, after_id=0)

    assert [event["id"] for event in fetched] == list(range(1, 241))
    assert len(stepfunctions.calls) == 2 and stepfunctions.calls[1]["nextToken"] == "200"
    rows = step_rows(fetched)
    assert len(rows) == 120
    assert all(row.status == SUCCEEDED for row in rows)


def test_a_server_that_ignores_reverse_order_is_read_to_the_end():
    class OldestFirst(RecordedStepFunctions):
        def get_execution_history(self, **arguments):
            self.calls.append(arguments)
            start = int(arguments.get("nextToken", 0))
            page = self.events[start:start + arguments["maxResults"]]
            more = start + arguments["maxResults"] < len(self.events)
            return {"events": page, **({"nextToken": str(start + arguments["maxResults"])} if more else {})}

    events = [{**entered("Wait", "Wait"), "id": number, "previousEventId": number - 1, "timestamp": at(number)}
              for number in range(1, 451)]
    stepfunctions = OldestFirst(events, growth=0)

    assert [event["id"] for event in fetch_new_events(stepfunctions, EXECUTION, after_id=440)] == list(range(441, 451))
    assert len(stepfunctions.calls) == 3
