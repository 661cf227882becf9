"""The pause and resume steps against a stand-in Connect client: order of calls, and when the wait-loop is done."""

import pytest

from lambdas.connect.errors import ConnectorFailed
from lambdas.steps import lifecycle
from lambdas.wait_loop import Schedule
from tests.unit.factories import pipeline_spec, raw_spec

pytestmark = pytest.mark.unit

NAMES = ["cdcflow-orders-source", "cdcflow-orders-sink"]
ONE_LOOK = Schedule(first=0, base=1, growth=2, cap=30, attempts=2)


class Connect:
    def __init__(self, states: dict[str, tuple[str, list[str]]]) -> None:
        self.states, self.calls = states, []

    def pause(self, name: str) -> None:
        self.calls.append(("pause", name))

    def resume(self, name: str) -> None:
        self.calls.append(("resume", name))

    def get_status(self, name: str) -> dict:
        connector, tasks = self.states[name]
        return {"connector": {"state": connector}, "tasks": [{"id": i, "state": s} for i, s in enumerate(tasks)]}


def test_pause_stops_the_source_first_and_resume_starts_the_sink_first():
    client = Connect({})

    lifecycle.pause_connectors(client, NAMES)
    lifecycle.resume_connectors(client, NAMES)

    assert client.calls == [("pause", NAMES[0]), ("pause", NAMES[1]), ("resume", NAMES[1]), ("resume", NAMES[0])]


@pytest.mark.parametrize(("connector", "tasks", "wanted", "expected"), [
    ("PAUSED", ["PAUSED", "PAUSED"], "PAUSED", True),
    ("PAUSED", ["RUNNING"], "PAUSED", False),  # Connect pauses the tasks a moment after the connector
    ("PAUSED", [], "PAUSED", False),
    ("RUNNING", ["RUNNING"], "RUNNING", True),
    ("RUNNING", ["PAUSED"], "RUNNING", False),
])
def test_a_connector_is_in_a_state_once_it_and_every_task_are(connector, tasks, wanted, expected):
    assert lifecycle.in_state(connector, tasks, wanted) is expected


def run_check(monkeypatch, states: dict, wanted: str, attempt: int = 0) -> dict:
    """CheckConnectorsState as the wait-loop calls it, against `states` (by connector name)."""
    spec = pipeline_spec("orders")
    names = [spec.names.source_connector, spec.names.sink_connector]
    client = Connect({names[0]: states["source"], names[1]: states["sink"]})

    class Factory:
        def __init__(self, url: str) -> None:
            pass

        def __enter__(self) -> Connect:
            return client

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(lifecycle, "ConnectClient", Factory)
    return lifecycle.check_handler({"spec": raw_spec("orders"), "state": wanted, "attempt": attempt,
                                    "schedule": ONE_LOOK.as_payload()}, None)


def test_the_loop_goes_on_once_both_connectors_are_paused(monkeypatch):
    done = run_check(monkeypatch, {"source": ("PAUSED", ["PAUSED"]), "sink": ("PAUSED", ["PAUSED"])}, "PAUSED")
    waiting = run_check(monkeypatch, {"source": ("PAUSED", ["PAUSED"]), "sink": ("PAUSED", ["RUNNING"])}, "PAUSED")

    assert done["ready"] is True and done["attempt"] == 1
    assert waiting["ready"] is False and waiting["wait_seconds"] == 1


def test_the_loop_gives_up_naming_the_connectors_after_its_last_check(monkeypatch):
    with pytest.raises(lifecycle.ConnectorsNotInState, match="not RUNNING after 2 checks.*tasks PAUSED"):
        run_check(monkeypatch, {"source": ("RUNNING", ["RUNNING"]), "sink": ("RUNNING", ["PAUSED"])}, "RUNNING",
                  attempt=1)


def test_a_failed_task_ends_the_loop_at_once(monkeypatch):
    with pytest.raises(ConnectorFailed, match="FAILED while waiting for it to be RUNNING"):
        run_check(monkeypatch, {"source": ("RUNNING", ["FAILED"]), "sink": ("RUNNING", ["RUNNING"])}, "RUNNING")
