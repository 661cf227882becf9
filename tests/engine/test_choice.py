"""Choice rules: every operator, type mismatches, missing variables, And/Or/Not, validation."""

import pytest

from localsfn.choice import OPERATORS, choose, matches, rule_problems
from localsfn.errors import StatesError

DATA = {
    "s": "m",
    "n": 5,
    "f": 5.0,
    "t": True,
    "false": False,
    "ts": "2016-08-18T17:33:00Z",
    "null": None,
    "list": [1],
    "obj": {"k": "v"},
    "other": {"s": "m", "a": "a", "z": "z", "n": 5, "four": 4, "six": 6, "ts": "2016-08-18T17:33:00Z",
              "early": "2001-01-01T00:00:00Z", "late": "2030-01-01T00:00:00Z", "t": True},
}


def holds(variable, operator, operand, data=DATA):
    return matches({"Variable": variable, operator: operand}, data)


@pytest.mark.parametrize(
    ("operator", "operand", "expected"),
    [
        ("StringEquals", "m", True), ("StringEquals", "M", False),
        ("StringLessThan", "n", True), ("StringLessThan", "m", False),
        ("StringGreaterThan", "l", True), ("StringGreaterThan", "m", False),
        ("StringLessThanEquals", "m", True), ("StringLessThanEquals", "l", False),
        ("StringGreaterThanEquals", "m", True), ("StringGreaterThanEquals", "n", False),
    ],
)
def test_string_comparisons(operator, operand, expected):
    assert holds("$.s", operator, operand) is expected


@pytest.mark.parametrize(
    ("operator", "operand", "expected"),
    [
        ("NumericEquals", 5, True), ("NumericEquals", 5.0, True), ("NumericEquals", 6, False),
        ("NumericLessThan", 5.5, True), ("NumericLessThan", 5, False),
        ("NumericGreaterThan", -1, True), ("NumericGreaterThan", 5, False),
        ("NumericLessThanEquals", 5, True), ("NumericLessThanEquals", 4.9, False),
        ("NumericGreaterThanEquals", 5, True), ("NumericGreaterThanEquals", 5.1, False),
    ],
)
def test_numeric_comparisons(operator, operand, expected):
    assert holds("$.n", operator, operand) is expected
    assert holds("$.f", operator, operand) is expected


def test_boolean_equals():
    assert holds("$.t", "BooleanEquals", True)
    assert not holds("$.t", "BooleanEquals", False)
    assert holds("$.false", "BooleanEquals", False)


@pytest.mark.parametrize(
    ("operator", "operand", "expected"),
    [
        ("TimestampEquals", "2016-08-18T17:33:00Z", True),
        ("TimestampEquals", "2016-08-18T19:33:00+02:00", True),  # the same instant
        ("TimestampEquals", "2016-08-18T17:33:00.000Z", True),
        ("TimestampLessThan", "2016-08-18T17:33:00.001Z", True),
        ("TimestampLessThan", "2016-08-18T17:33:00Z", False),
        ("TimestampGreaterThan", "2016-08-18T17:32:59.999999999Z", True),
        ("TimestampGreaterThan", "2016-08-18T17:33:00Z", False),
        ("TimestampLessThanEquals", "2016-08-18T17:33:00Z", True),
        ("TimestampLessThanEquals", "2001-01-01T00:00:00Z", False),
        ("TimestampGreaterThanEquals", "2016-08-18T17:33:00Z", True),
        ("TimestampGreaterThanEquals", "2030-01-01T00:00:00Z", False),
    ],
)
def test_timestamp_comparisons(operator, operand, expected):
    assert holds("$.ts", operator, operand) is expected


@pytest.mark.parametrize(
    ("variable", "operator", "path", "expected"),
    [
        ("$.s", "StringEqualsPath", "$.other.s", True),
        ("$.s", "StringLessThanPath", "$.other.z", True),
        ("$.s", "StringGreaterThanPath", "$.other.a", True),
        ("$.s", "StringLessThanEqualsPath", "$.other.a", False),
        ("$.s", "StringGreaterThanEqualsPath", "$.other.s", True),
        ("$.n", "NumericEqualsPath", "$.other.n", True),
        ("$.n", "NumericLessThanPath", "$.other.six", True),
        ("$.n", "NumericGreaterThanPath", "$.other.four", True),
        ("$.n", "NumericLessThanEqualsPath", "$.other.four", False),
        ("$.n", "NumericGreaterThanEqualsPath", "$.other.n", True),
        ("$.t", "BooleanEqualsPath", "$.other.t", True),
        ("$.false", "BooleanEqualsPath", "$.other.t", False),
        ("$.ts", "TimestampEqualsPath", "$.other.ts", True),
        ("$.ts", "TimestampLessThanPath", "$.other.late", True),
        ("$.ts", "TimestampGreaterThanPath", "$.other.early", True),
        ("$.ts", "TimestampLessThanEqualsPath", "$.other.early", False),
        ("$.ts", "TimestampGreaterThanEqualsPath", "$.other.ts", True),
    ],
)
def test_path_variants_compare_with_another_value_of_the_input(variable, operator, path, expected):
    assert holds(variable, operator, path) is expected


def test_every_operator_is_exercised_here():
    tested = {
        "StringEquals", "StringLessThan", "StringGreaterThan", "StringLessThanEquals", "StringGreaterThanEquals",
        "NumericEquals", "NumericLessThan", "NumericGreaterThan", "NumericLessThanEquals", "NumericGreaterThanEquals",
        "BooleanEquals", "TimestampEquals", "TimestampLessThan", "TimestampGreaterThan", "TimestampLessThanEquals",
        "TimestampGreaterThanEquals", "StringMatches", "IsNull", "IsPresent", "IsString", "IsNumeric", "IsBoolean",
        "IsTimestamp",
    }
    tested |= {f"{name}Path" for name in tested if not name.startswith(("Is", "StringMatches"))}
    assert tested == set(OPERATORS)


@pytest.mark.parametrize(
    ("variable", "operator", "operand"),
    [
        ("$.n", "StringEquals", "5"),
        ("$.s", "NumericEquals", 5),
        ("$.t", "NumericEquals", 1),  # true is not a number
        ("$.n", "BooleanEquals", True),
        ("$.s", "TimestampEquals", "2016-08-18T17:33:00Z"),
        ("$.n", "StringMatches", "*"),
        ("$.null", "StringEquals", "null"),
        ("$.list", "NumericEquals", 1),
        ("$.s", "StringEqualsPath", "$.n"),
        ("$.n", "NumericEqualsPath", "$.s"),
        ("$.t", "BooleanEqualsPath", "$.s"),
        ("$.ts", "TimestampEqualsPath", "$.s"),
    ],
)
def test_a_comparison_against_another_type_is_false(variable, operator, operand):
    assert holds(variable, operator, operand) is False


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("IsNull", None, True), ("IsNull", 0, False),
        ("IsString", "x", True), ("IsString", 1, False),
        ("IsNumeric", 1.5, True), ("IsNumeric", True, False), ("IsNumeric", "1", False),
        ("IsBoolean", False, True), ("IsBoolean", 0, False),
        ("IsTimestamp", "2016-08-18T17:33:00Z", True), ("IsTimestamp", "2016-08-18T17:33:00.123+05:30", True),
        ("IsTimestamp", "2016-08-18 17:33:00Z", False), ("IsTimestamp", "2016-08-18t17:33:00z", False),
        ("IsTimestamp", "2016-13-18T17:33:00Z", False), ("IsTimestamp", "2016-08-18", False), ("IsTimestamp", 1, False),
    ],
)
def test_type_tests(operator, value, expected):
    assert holds("$.v", operator, True, {"v": value}) is expected
    assert holds("$.v", operator, False, {"v": value}) is not expected


def test_is_present_tolerates_a_missing_variable():
    assert holds("$.s", "IsPresent", True)
    assert holds("$.null", "IsPresent", True)
    assert holds("$.absent", "IsPresent", False)
    assert holds("$.obj.k.deeper", "IsPresent", False)


@pytest.mark.parametrize("operator", ["StringEquals", "IsNull", "IsString", "NumericEqualsPath"])
def test_a_missing_variable_fails_with_states_runtime(operator):
    operand = {"StringEquals": "x", "IsNull": True, "IsString": True, "NumericEqualsPath": "$.n"}[operator]
    with pytest.raises(StatesError) as raised:
        holds("$.absent", operator, operand)
    assert raised.value.error == "States.Runtime"
    assert raised.value.cause == "Invalid path '$.absent': The choice state's condition path references an invalid value."


def test_a_missing_comparison_path_fails_with_states_runtime():
    with pytest.raises(StatesError) as raised:
        holds("$.n", "NumericEqualsPath", "$.absent")
    assert raised.value.error == "States.Runtime"
    assert "$.absent" in raised.value.cause


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("log-*.txt", "log-2024.txt", True),
        ("log-*.txt", "log-.txt", True),
        ("log-*.txt", "log-2024.csv", False),
        ("*", "", True),
        ("*.*", "a.b.c", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axxb", False),
        ("a\\\\b", "a\\b", True),
        ("a?[b]", "a?[b]", True),  # only * is special
        ("a?[b]", "ax[b]", False),
        ("line*end", "line\nend", True),
        ("exact", "exactly", False),
    ],
)
def test_string_matches(pattern, value, expected):
    assert holds("$.v", "StringMatches", pattern, {"v": value}) is expected


def test_strings_compare_as_java_does_by_utf16_code_units():
    # U+FF5E sorts after U+1F600 by code point but before it by UTF-16 code unit (0xD83D).
    assert holds("$.v", "StringLessThan", "\U0001F600", {"v": "\uff5e"}) is False
    assert holds("$.v", "StringGreaterThan", "\U0001F600", {"v": "\uff5e"}) is True


def test_and_or_not():
    rule = {"Or": [
        {"Variable": "$.n", "NumericEquals": 99},
        {"And": [{"Variable": "$.s", "StringEquals": "m"}, {"Not": {"Variable": "$.t", "BooleanEquals": False}}]},
    ]}
    assert matches(rule, DATA)
    assert not matches({"Not": rule}, DATA)
    assert not matches({"And": [{"Variable": "$.n", "NumericEquals": 5}, {"Variable": "$.s", "StringEquals": "x"}]}, DATA)


def test_and_stops_at_the_first_false_rule():
    # The second rule would fail on its missing Variable, but And never reaches it.
    rule = {"And": [{"Variable": "$.n", "NumericEquals": 0}, {"Variable": "$.absent", "StringEquals": "x"}]}
    assert not matches(rule, DATA)


STATE = {
    "Type": "Choice",
    "Choices": [
        {"Variable": "$.status", "StringEquals": "RUNNING", "Next": "Done"},
        {"And": [{"Variable": "$.attempt", "NumericLessThan": 10}, {"Variable": "$.status", "StringMatches": "*PENDING"}], "Next": "Wait"},
    ],
    "Default": "GiveUp",
}


def test_choose_returns_the_next_of_the_first_matching_rule():
    assert choose(STATE, {"status": "RUNNING", "attempt": 99}) == "Done"
    assert choose(STATE, {"status": "TASK_PENDING", "attempt": 3}) == "Wait"


def test_choose_falls_back_to_default():
    assert choose(STATE, {"status": "TASK_PENDING", "attempt": 10}) == "GiveUp"


def test_no_match_and_no_default_fails_with_no_choice_matched():
    state = {key: value for key, value in STATE.items() if key != "Default"}
    with pytest.raises(StatesError) as raised:
        choose(state, {"status": "FAILED", "attempt": 1})
    assert raised.value.error == "States.NoChoiceMatched"


def test_valid_rules_have_no_problems():
    for index, rule in enumerate(STATE["Choices"]):
        assert rule_problems(rule, f"State 'Check' Choices[{index}]") == []
    assert rule_problems({"Not": {"Variable": "$.x", "IsPresent": True}, "Next": "A", "Comment": "why"}, "w") == []
    assert rule_problems({"Variable": "$.ts", "TimestampEquals": "2016-08-18T17:33:00.5+01:00", "Next": "A"}, "w") == []


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"Variable": "$.a", "StringEquals": "x"}, "State 'C' Choices[0]: a top-level choice rule needs a Next"),
        ({"Variable": "$.a", "StringEqual": "x", "Next": "A"}, "unknown operator or field 'StringEqual'"),
        ({"Variable": "$.a", "Next": "A"}, "no comparison operator"),
        ({"Variable": "$.a", "StringEquals": "x", "NumericEquals": 1, "Next": "A"}, "only one operator is allowed per rule, found StringEquals, NumericEquals"),
        ({"StringEquals": "x", "Next": "A"}, "StringEquals needs a Variable"),
        ({"Variable": "a.b", "StringEquals": "x", "Next": "A"}, 'Variable "a.b" is not a valid path'),
        ({"Variable": "$.a", "StringEquals": 1, "Next": "A"}, "StringEquals takes a string, got 1"),
        ({"Variable": "$.a", "StringMatches": 1, "Next": "A"}, "StringMatches takes a string"),
        ({"Variable": "$.a", "NumericEquals": "1", "Next": "A"}, 'NumericEquals takes a number, got "1"'),
        ({"Variable": "$.a", "NumericEquals": True, "Next": "A"}, "NumericEquals takes a number, got true"),
        ({"Variable": "$.a", "BooleanEquals": "true", "Next": "A"}, "BooleanEquals takes true or false"),
        ({"Variable": "$.a", "TimestampEquals": "yesterday", "Next": "A"}, "TimestampEquals takes an RFC 3339 timestamp"),
        ({"Variable": "$.a", "IsNull": "yes", "Next": "A"}, "IsNull takes true or false"),
        ({"Variable": "$.a", "StringEqualsPath": "b", "Next": "A"}, "StringEqualsPath takes a path"),
        ({"And": [], "Next": "A"}, "And must be a non-empty array of choice rules"),
        ({"Or": {"Variable": "$.a", "IsNull": True}, "Next": "A"}, "Or must be a non-empty array"),
        ({"Variable": "$.a", "And": [{"Variable": "$.a", "IsNull": True}], "Next": "A"}, "And does not take a Variable"),
        ({"And": [{"Variable": "$.a", "IsNull": True, "Next": "B"}], "Next": "A"}, "State 'C' Choices[0].And[0]: Next is only allowed on a top-level choice rule"),
        ({"Not": {"Variable": "$.a", "NumericEquals": "1"}, "Next": "A"}, "State 'C' Choices[0].Not: NumericEquals takes a number"),
        ({"Or": [{"Variable": "$.a", "IsNull": True}, "rule"], "Next": "A"}, "State 'C' Choices[0].Or[1]: a choice rule must be an object"),
        ("not a rule", "a choice rule must be an object"),
    ],
)
def test_rule_problems_name_the_rule_and_the_problem(rule, problem):
    problems = rule_problems(rule, "State 'C' Choices[0]")
    assert any(problem in message for message in problems), problems
    assert all(message.startswith("State 'C' Choices[0]") for message in problems)
