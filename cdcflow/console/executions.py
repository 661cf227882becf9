"""An execution as the console draws it: each state's status, its last input and output, the path taken, the events.

Pure functions over what Step Functions answers (DescribeExecution, the
state machine's ASL, GetExecutionHistory), so they work the same against
the local engine and AWS. The statuses are those the Step Functions console
colours: succeeded, failed, caught (failed, and a Catch moved on), in
progress, and not reached.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cdcflow import history

SUCCEEDED, FAILED, CAUGHT, IN_PROGRESS, NOT_REACHED = "succeeded", "failed", "caught", "in_progress", "not_reached"
_STATUS = {
    history.SUCCEEDED: SUCCEEDED,
    history.FAILED: FAILED,
    history.CAUGHT: CAUGHT,
    history.RUNNING: IN_PROGRESS,
    history.ABORTED: FAILED,
}
# Event details too large for the table; a state's input and output are shown on the state instead.
_BULKY_DETAILS = ("input", "output", "parameters", "inputDetails", "outputDetails")


def _document(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def edges(definition: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every transition the ASL allows: `next` (Next, Default, a Choice's rules) and `catch` (a Catch's Next)."""
    found: list[dict[str, str]] = []
    for name, state in definition.get("States", {}).items():
        targets: list[tuple[str, str]] = []
        for rule in state.get("Choices", []):
            targets.append((rule["Next"], "choice"))
        if "Default" in state:
            targets.append((state["Default"], "default"))
        if "Next" in state:
            targets.append((state["Next"], "next"))
        for catcher in state.get("Catch", []):
            targets.append((catcher["Next"], "catch"))
        seen: set[str] = set()
        for target, kind in targets:
            if target not in seen:
                seen.add(target)
                found.append({"from": name, "to": target, "kind": kind})
    return found


def state_views(definition: Mapping[str, Any], events: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each state of the ASL with the status, visits, input, output, error and cause of its last visit."""
    rows = history.step_rows(events)
    entered = [event for event in events if event["type"].endswith("StateEntered")]
    views: dict[str, dict[str, Any]] = {
        name: {"type": state["Type"], "status": NOT_REACHED, "visits": 0}
        for name, state in definition.get("States", {}).items()
    }
    for index, row in enumerate(rows):
        view = views.setdefault(row.name, {"type": row.state_type, "status": NOT_REACHED, "visits": 0})
        entered_event = entered[index] if index < len(entered) else {}
        exited_event = _exit_of(events, entered_event, row.name)
        view.update(
            status=_STATUS.get(row.status, IN_PROGRESS),
            visits=view["visits"] + 1,
            attempts=row.attempts,
            entered_at=row.entered_at,
            exited_at=row.exited_at,
            error=row.error,
            cause=history.cause_message(row.cause) if row.cause else None,
            input=_document(entered_event.get("stateEnteredEventDetails", {}).get("input")),
            output=_document(exited_event.get("stateExitedEventDetails", {}).get("output")) if exited_event else None,
        )
    return views


def _exit_of(events: list[Mapping[str, Any]], entered: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    if not entered:
        return None
    for event in events:
        if event["id"] > entered["id"] and event["type"].endswith("StateExited") \
                and event.get("stateExitedEventDetails", {}).get("name") == name:
            return event
    return None


def path_taken(events: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The transitions the execution took, in order (from one entered state to the next)."""
    taken: list[dict[str, str]] = []
    previous: str | None = None
    for event in events:
        if event["type"].endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            if previous is not None:
                taken.append({"from": previous, "to": name})
            previous = name
    return taken


def event_rows(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The history as the table shows it: id, type, time, the state it belongs to, and its small details."""
    rows = []
    state: str | None = None
    for event in events:
        kind = event["type"]
        details = history._details(event)
        if kind.endswith("StateEntered"):
            state = details.get("name")
        shown = {key: value for key, value in details.items() if key not in _BULKY_DETAILS}
        if "cause" in shown:
            shown["cause"] = history.cause_message(shown["cause"])
        rows.append({"id": event["id"], "type": kind, "timestamp": event["timestamp"],
                     "state": details.get("name", state), "details": shown})
        if kind.endswith("StateExited"):
            state = None
    return rows


def execution_view(execution: Mapping[str, Any], definition: Mapping[str, Any],
                   events: list[Mapping[str, Any]]) -> dict[str, Any]:
    """What the execution page draws, from DescribeExecution, the ASL and the whole history (oldest first)."""
    outcome = history.execution_outcome(events)
    return {
        "execution": {
            "arn": execution["executionArn"],
            "name": execution.get("name"),
            "state_machine_arn": execution.get("stateMachineArn"),
            "status": execution.get("status", outcome.status),
            "start_date": execution.get("startDate"),
            "stop_date": execution.get("stopDate"),
            "error": execution.get("error") or outcome.error,
            "cause": history.cause_message(execution.get("cause") or outcome.cause),
        },
        "start_at": definition.get("StartAt"),
        "edges": edges(definition),
        "states": state_views(definition, events),
        "path": path_taken(events),
        "events": event_rows(events),
    }


# What a connection holds that the teams using it do not see (`Connection.team_view` leaves these out), by the
# names they carry in a resolved spec, a connection and a connector's config.
HIDDEN_KEYS = frozenset({"host", "hostname", "database.hostname", "port", "database.port", "admin_secret", "secret",
                         "bootstrap_servers", "bootstrap.servers", "url", "connection.url", "connect_url", "ca_file",
                         "connect_ca_file"})
HIDDEN = "(hidden)"
_SPEC_KEYS = frozenset({"pipeline_id", "source", "kafka", "sink"})


def sensitive_values(spec: Mapping[str, Any] | None) -> set[str]:
    """The hosts, addresses and secret names a resolved spec holds, as they may also appear in free text
    (each with a dot, colon or slash: a name, address, URL or secret path)."""
    found: set[str] = set()
    if not isinstance(spec, Mapping):
        return found

    def add(value: Any) -> None:
        # A bare one-word host ("db", "connect") is too common a word to cut from text; its host:port is not.
        if isinstance(value, str) and len(value) >= 3 and any(mark in value for mark in ".:/"):
            found.add(value)

    for part in ("source", "sink", "kafka", "connect"):
        section = spec.get(part)
        if not isinstance(section, Mapping):
            continue
        for key, value in section.items():
            if key in HIDDEN_KEYS:
                add(value)
                for piece in str(value).split(","):  # bootstrap servers: host:port,host:port
                    add(piece.strip())
                    add(piece.strip().rpartition(":")[0] if "//" not in piece else "")
                if key == "host" and section.get("port") is not None:
                    add(f"{value}:{section['port']}")
                if key in ("url", "connect_url") and "//" in str(value):
                    add(str(value).split("//", 1)[1].split("/", 1)[0].rpartition(":")[0])
    return {value for value in found if value}


def redacted(document: Any, hidden_values: Iterable[str]) -> Any:
    """`document` as a team may see it: a resolved spec as the team's view of it (`request_view`), every key a
    connection hides replaced, and each hidden value (a host, a secret's name) cut out of free text."""
    from lambdas.pipeline_request import request_view

    values = sorted(set(hidden_values), key=len, reverse=True)

    def text(value: str) -> str:
        for hidden in values:
            value = value.replace(hidden, HIDDEN)
        return value

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            if _SPEC_KEYS <= value.keys() and isinstance(value.get("source"), Mapping) \
                    and isinstance(value.get("kafka"), Mapping) and isinstance(value.get("sink"), Mapping):
                try:
                    return walk_plain(request_view(dict(value)))
                except (KeyError, TypeError, AttributeError):
                    pass
            return walk_plain(value)
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, str):
            return text(value)
        return value

    def walk_plain(value: Mapping[str, Any]) -> dict[str, Any]:
        return {key: HIDDEN if key in HIDDEN_KEYS and not isinstance(value[key], (Mapping, list)) and
                value[key] is not None else walk(value[key]) for key in value}

    return walk(document)


def redacted_for(view: Mapping[str, Any], execution_input: str | None, sees_connections: bool) -> Any:
    """The execution view for a caller: unchanged for one the API shows connections to in full (an admin);
    for a team's caller, `redacted` of the hosts and secret names the execution's input spec holds."""
    if sees_connections:
        return view
    spec = _document(execution_input)
    return redacted(view, sensitive_values(spec.get("spec") if isinstance(spec, dict) else None))
