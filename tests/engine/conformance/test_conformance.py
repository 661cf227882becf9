"""The conformance suite: cases from AWS's documentation, run on the engine, compared with the documented result.

Each file in `cases/` holds the cases of one topic; each case names its
source (a URL and section of the Amazon States Language specification or
the Step Functions developer guide), a definition, an input and what AWS
documents: the status and output or error, or the refusal of the
definition. The cases of `recorded_histories.json` hold histories recorded on
AWS and compare whole histories (`assert_history`). Known gaps are listed in
GAPS.md, not here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localsfn import Engine
from localsfn.errors import DefinitionInvalid
from localsfn.validation import validate

from .functions import make_functions

CASES_DIR = Path(__file__).parent / "cases"


def load_cases() -> list[Any]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.json")):
        for case in json.loads(path.read_text())["cases"]:
            cases.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return cases


def lambda_errors_compared_by_type_and_message(value: Any) -> Any:
    """Lambda's error document carries a request id and a stack trace that change on every run."""
    if isinstance(value, dict):
        return {key: lambda_errors_compared_by_type_and_message(item) for key, item in value.items()}
    if isinstance(value, list):
        return [lambda_errors_compared_by_type_and_message(item) for item in value]
    if isinstance(value, str) and value.startswith('{"errorMessage"'):
        document = json.loads(value)
        return {"errorMessage": document["errorMessage"], "errorType": document["errorType"]}
    return value


def normalised(event: dict) -> dict:
    """A history event as a recorded one is kept: no timestamp, input and output as JSON values, the role ARN as <role>."""
    shaped = {}
    for key, value in event.items():
        if key == "timestamp":
            continue
        if key.endswith("EventDetails"):
            value = dict(value)
            for field in ("input", "output"):
                if isinstance(value.get(field), str):
                    value[field] = json.loads(value[field])
            if "roleArn" in value:
                value["roleArn"] = "<role>"
        shaped[key] = value
    return shaped


def assert_history(events: list[dict], recorded: list[dict]) -> None:
    """The engine's history is the recorded one: event for event, in order, with ids and previousEventIds.

    Where the recording leaves an id or previousEventId out (None), it is not
    compared; a run of events whose ids it masks compares as a set (their
    order varies from run to run on AWS too).
    """
    assert len(events) == len(recorded), [event["type"] for event in events]
    shaped = [normalised(event) for event in events]
    for actual, expected in zip(shaped, recorded):
        for key in ("id", "previousEventId"):
            if expected[key] is None:
                actual[key] = None
    index = 0
    while index < len(recorded):
        if recorded[index]["id"] is None:
            end = index
            while end < len(recorded) and recorded[end]["id"] is None:
                end += 1
            key = lambda event: json.dumps(event, sort_keys=True)  # noqa: E731
            assert sorted(shaped[index:end], key=key) == sorted(recorded[index:end], key=key)
            index = end
        else:
            assert shaped[index] == recorded[index], f"event {index + 1}"
            index += 1


@pytest.mark.parametrize("case", load_cases())
def test_conformance(case: dict, tmp_path: Path, clock) -> None:
    assert case["source"].startswith("https://"), "every case names where it comes from"
    expect = case["expect"]
    definition = json.dumps(case["definition"])
    if "invalid" in expect:
        with pytest.raises(DefinitionInvalid) as refused:
            validate(definition)
        assert expect["invalid"] in str(refused.value)
        return
    with Engine(tmp_path / "journal.sqlite", make_functions(), clock=clock) as engine:
        machine = engine.create_state_machine("conformance", definition)
        execution = engine.start_execution(machine, json.dumps(case["input"]))
        description = engine.wait_for_execution(execution, timeout=20)
        history = engine.get_execution_history(execution)
    assert description["status"] == expect["status"], description
    if "history" in expect:
        assert_history(history, expect["history"])
    if "output" in expect:
        assert lambda_errors_compared_by_type_and_message(json.loads(description["output"])) == expect["output"]
    if "error" in expect:
        assert description.get("error") == expect["error"]
    if "cause" in expect:
        assert description.get("cause") == expect["cause"]
    if "cause_contains" in expect:
        assert expect["cause_contains"] in description.get("cause", "")
