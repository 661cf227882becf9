"""The differential suite: every corpus case on moto's interpreter and on localsfn.

* moto must reach the outcome the case expects (what AWS documents), except
  for the cases marked `moto_diverges`, where moto is asserted to still
  differ, so a fixed moto shows up here.
* localsfn must reach the expected outcome, and for every case moto agrees
  on, produce the same sequence of history event types as moto (sorted for
  cases whose branches or iterations run concurrently).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from .harness import Case, Outcome, load_cases, run_on_localsfn, run_on_moto
from .tasks import make_functions

# tests/engine/conftest.py marks these `unit`; both engines run in-process, about a minute in all.
pytestmark = pytest.mark.slow

CASES = load_cases()
AGREEING = [case for case in CASES if case.moto_diverges is None]
DIVERGING = [case for case in CASES if case.moto_diverges is not None]


@cache
def moto_outcome(case_name: str) -> Outcome:
    case = next(case for case in CASES if case.name == case_name)
    return run_on_moto(case, make_functions())


def result_differences(outcome: Outcome, expected: dict) -> dict:
    """The expected fields the outcome got wrong, as {field: (expected, got)}; a missing `cause` is not compared."""
    result = outcome.result()
    return {key: (value, result.get(key)) for key, value in expected.items() if _canonical(result.get(key)) != _canonical(value)}


def _canonical(value: object) -> str:
    # JSON text, so that true and 1 differ as they do in JSON.
    return json.dumps(value, sort_keys=True)


def test_corpus_covers_the_language() -> None:
    """The corpus exercises every state type, intrinsic, Choice operator family and Retry/Catch field."""
    text = "\n".join(json.dumps([case.definition, case.input]) for case in CASES)
    state_types = {"Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"}
    intrinsics = {
        "States.Format", "States.StringToJson", "States.JsonToString", "States.Array(", "States.ArrayPartition",
        "States.ArrayContains", "States.ArrayRange", "States.ArrayGetItem", "States.ArrayLength", "States.ArrayUnique",
        "States.Base64Encode", "States.Base64Decode", "States.Hash", "States.JsonMerge", "States.MathRandom",
        "States.MathAdd", "States.StringSplit", "States.UUID",
    }
    hash_algorithms = {"'MD5'", "'SHA-1'", "'SHA-256'", "'SHA-384'", '"SHA-512"'}
    choice_operators = {
        f'"{family}{relation}{suffix}"'
        for family in ("String", "Numeric", "Timestamp")
        for relation in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
        for suffix in ("", "Path")
    } | {'"BooleanEquals"', '"BooleanEqualsPath"', '"And"', '"Or"', '"Not"', '"StringMatches"'} | {
        f'"Is{kind}"' for kind in ("Present", "Null", "String", "Numeric", "Boolean", "Timestamp")
    }
    fields = {
        '"ErrorEquals"', '"IntervalSeconds"', '"BackoffRate"', '"MaxAttempts"', '"MaxDelaySeconds"',
        '"JitterStrategy"', '"Catch"', '"ResultPath"', '"ItemsPath"', '"ItemSelector"', '"Parameters"',
        '"MaxConcurrency"', '"ItemProcessor"', '"Iterator"', '"Branches"', '"Seconds"', '"SecondsPath"',
        '"Timestamp"', '"TimestampPath"', '"ErrorPath"', '"CausePath"', '"InputPath"', '"OutputPath"',
        '"ResultSelector"',
    }
    missing_types = {kind for kind in state_types if f'"Type": "{kind}"' not in text}
    missing = {token for token in intrinsics | hash_algorithms | choice_operators | fields if token not in text}
    assert not missing_types and not missing, (missing_types, missing)
    assert len(AGREEING) >= 60, f"only {len(AGREEING)} cases where moto agrees with AWS"
    for case in DIVERGING:
        assert case.moto_diverges["reason"] and case.moto_diverges["reference"].startswith("https://docs.aws.amazon.com/")


@pytest.mark.parametrize("case", AGREEING, ids=lambda case: case.name)
def test_moto_reaches_the_expected_outcome(case: Case) -> None:
    assert result_differences(moto_outcome(case.name), case.expected) == {}


@pytest.mark.parametrize("case", DIVERGING, ids=lambda case: case.name)
def test_moto_still_diverges_where_documented(case: Case) -> None:
    assert result_differences(moto_outcome(case.name), case.expected) != {}, (
        f"moto now agrees with AWS on {case.name}; drop its moto_diverges note"
    )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_localsfn_matches(case: Case, tmp_path: Path) -> None:
    outcome = run_on_localsfn(case, make_functions(), tmp_path / "journal.sqlite")
    assert result_differences(outcome, case.expected) == {}
    if case.moto_diverges is None:
        reference = moto_outcome(case.name)
        assert outcome.history(case.ordered_history) == reference.history(case.ordered_history)
