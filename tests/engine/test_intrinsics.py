"""Intrinsic functions: every States.* call, its argument rules and its failures."""

import hashlib
import json
import uuid

import pytest

from localsfn.errors import StatesError
from localsfn.intrinsics import evaluate, expression_problem, is_intrinsic

DATA = {
    "name": "Arnav",
    "template": "Hello, my name is {}.",
    "numbers": [1, 2, 3, 4, 5, 6, 7, 8, 9],
    "index": 5,
    "json1": {"a": {"a1": 1, "a2": 2}, "b": 2},
    "json2": {"a": {"a3": 1, "a4": 2}, "c": 3},
    "escaped": '{"foo": "bar"}',
    "arn": "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/my.recipe.name/1.0.0",
}
CONTEXT = {"Execution": {"Name": "run-1"}, "State": {"Name": "Render"}}


def run(expression, data=DATA):
    return evaluate(expression, data, CONTEXT)


def failure(expression, data=DATA) -> StatesError:
    with pytest.raises(StatesError) as raised:
        run(expression, data)
    return raised.value


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("States.Format('Hello, my name is {}.', $.name)", "Hello, my name is Arnav."),
        ("States.Format($.template, $.name)", "Hello, my name is Arnav."),
        ("States.Format('no placeholders')", "no placeholders"),
        ("States.Format('{} {} {} {}', 1, 2.5, true, null)", "1 2.5 true null"),
        ("States.Format('{} and {}', States.Array(1, 'a'), $.json2)", "[1, a] and {a={a3=1, a4=2}, c=3}"),
        ("States.Format('{}:{}', $$.Execution.Name, $$.State.Name)", "run-1:Render"),
        ("States.Format('it\\'s \\{literal\\} {} \\\\ done', 'x')", "it's {literal} x \\ done"),
        ("States.Format('\\{}{}', 'x')", "{}x"),
    ],
)
def test_format(expression, expected):
    assert run(expression) == expected


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("States.Format('{} {}', 1)", "2 '{}' placeholder(s) but 1 value(s)"),
        ("States.Format('{}', 1, 2)", "1 '{}' placeholder(s) but 2 value(s)"),
        ("States.Format(1)", "template must be a string"),
    ],
)
def test_format_failures(expression, problem):
    error = failure(expression)
    assert error.error == "States.IntrinsicFailure"
    assert error.cause.startswith("States.Format: ")
    assert problem in error.cause


def test_string_to_json_and_back():
    assert run("States.StringToJson($.escaped)") == {"foo": "bar"}
    assert run("States.StringToJson('[1, true, null]')") == [1, True, None]
    assert run("States.JsonToString($.json1)") == '{"a":{"a1":1,"a2":2},"b":2}'
    assert run("States.JsonToString($.name)") == '"Arnav"'
    assert run("States.StringToJson(States.JsonToString($.json2))") == DATA["json2"]


def test_string_to_json_failures():
    assert failure("States.StringToJson('{not json')").error == "States.IntrinsicFailure"
    assert "must be a string" in failure("States.StringToJson($.numbers)").cause


def test_array():
    assert run("States.Array($.index, 'two', 3.5, true, false, null, $.json2.c)") == [5, "two", 3.5, True, False, None, 3]
    assert run("States.Array()") == []
    assert run("States.Array(States.Array(1), States.Array())") == [[1], []]


def test_array_partition():
    assert run("States.ArrayPartition($.numbers, 4)") == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert run("States.ArrayPartition($.numbers, 9)") == [DATA["numbers"]]
    assert run("States.ArrayPartition(States.Array(), 2)") == []
    assert run("States.ArrayPartition($.numbers, 3.6)") == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]  # rounded to 4


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("States.ArrayPartition($.numbers, 0)", "positive integer"),
        ("States.ArrayPartition($.numbers, -1)", "positive integer"),
        ("States.ArrayPartition($.name, 2)", "must be an array"),
        ("States.ArrayPartition($.numbers, 'two')", "must be an integer"),
    ],
)
def test_array_partition_failures(expression, problem):
    error = failure(expression)
    assert error.error == "States.IntrinsicFailure"
    assert problem in error.cause


def test_array_contains():
    assert run("States.ArrayContains($.numbers, $.index)") is True
    assert run("States.ArrayContains($.numbers, 42)") is False
    assert run("States.ArrayContains(States.Array($.json1), $.json1)") is True
    assert run("States.ArrayContains(States.Array(1), true)") is False  # JSON true is not 1
    assert run("States.ArrayContains(States.Array(true), 1)") is False
    assert "must be an array" in failure("States.ArrayContains($.name, 1)").cause


def test_array_range():
    assert run("States.ArrayRange(1, 9, 2)") == [1, 3, 5, 7, 9]
    assert run("States.ArrayRange(5, 5, 1)") == [5]
    assert run("States.ArrayRange(9, 1, -4)") == [9, 5, 1]
    assert run("States.ArrayRange(1, 0, 1)") == []
    assert run("States.ArrayRange(0.6, 2.4, 1)") == [1, 2]  # rounded
    assert len(run("States.ArrayRange(1, 1000, 1)")) == 1000


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("States.ArrayRange(1, 1001, 1)", "1001 items; at most 1000"),
        ("States.ArrayRange(1, 9, 0)", "step must not be 0"),
        ("States.ArrayRange('1', 9, 1)", "must be an integer"),
        ("States.ArrayRange(1, 9, true)", "must be an integer"),
    ],
)
def test_array_range_failures(expression, problem):
    error = failure(expression)
    assert error.error == "States.IntrinsicFailure"
    assert problem in error.cause


def test_array_get_item_and_length():
    assert run("States.ArrayGetItem($.numbers, $.index)") == 6
    assert run("States.ArrayGetItem($.numbers, 0)") == 1
    assert run("States.ArrayLength($.numbers)") == 9
    assert run("States.ArrayLength(States.Array())") == 0
    assert "outside the array" in failure("States.ArrayGetItem($.numbers, 9)").cause
    assert "outside the array" in failure("States.ArrayGetItem($.numbers, -1)").cause
    assert "index must be an integer" in failure("States.ArrayGetItem($.numbers, 'x')").cause
    assert "must be an array" in failure("States.ArrayLength($.json1)").cause


def test_array_unique_keeps_first_occurrences():
    assert run("States.ArrayUnique(States.Array(1, 2, 3, 3, 3, 4, 1))") == [1, 2, 3, 4]
    assert run("States.ArrayUnique(States.Array(1, true, '1', $.json1, $.json1))") == [1, True, "1", DATA["json1"]]
    assert "must be an array" in failure("States.ArrayUnique('abc')").cause


def test_base64_round_trip():
    assert run("States.Base64Encode('Data to encode')") == "RGF0YSB0byBlbmNvZGU="
    assert run("States.Base64Decode('RGVjb2RlZCBkYXRh')") == "Decoded data"
    assert run("States.Base64Decode(States.Base64Encode('héllo ✓'))") == "héllo ✓"


def test_base64_failures():
    long_text = {"text": "x" * 10_001}
    assert "at most 10000" in failure("States.Base64Encode($.text)", long_text).cause
    assert "at most 10000" in failure("States.Base64Decode($.text)", long_text).cause
    assert failure("States.Base64Decode('not base64!')").error == "States.IntrinsicFailure"
    assert "must be a string" in failure("States.Base64Encode(42)").cause


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [("MD5", hashlib.md5), ("SHA-1", hashlib.sha1), ("SHA-256", hashlib.sha256), ("SHA-384", hashlib.sha384), ("SHA-512", hashlib.sha512)],
)
def test_hash(algorithm, digest):
    assert run(f"States.Hash('input data', '{algorithm}')") == digest(b"input data").hexdigest()


def test_hash_matches_the_aws_documentation_example():
    assert run("States.Hash('input data', 'SHA-1')") == "aaff4a450a104cd177d28d18d74485e8cae074b7"


def test_hash_failures():
    assert "unknown algorithm" in failure("States.Hash('x', 'SHA-2')").cause
    assert "must be a string" in failure("States.Hash($.json1, 'MD5')").cause
    assert "at most 10000" in failure("States.Hash($.text, 'MD5')", {"text": "x" * 10_001}).cause


def test_json_merge_is_shallow():
    assert run("States.JsonMerge($.json1, $.json2, false)") == {"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3}
    assert DATA["json1"] == {"a": {"a1": 1, "a2": 2}, "b": 2}  # arguments untouched


def test_json_merge_failures():
    assert "only shallow merging" in failure("States.JsonMerge($.json1, $.json2, true)").cause
    assert "second argument must be a JSON object" in failure("States.JsonMerge($.json1, $.numbers, false)").cause
    assert "first argument must be a JSON object" in failure("States.JsonMerge('x', $.json2, false)").cause


def test_math_random_stays_in_range_start_inclusive_end_exclusive():
    values = {run("States.MathRandom(1, 4)") for _ in range(300)}
    assert values == {1, 2, 3}
    assert run("States.MathRandom(5, 6)") == 5


def test_math_random_with_a_seed_repeats():
    first = run("States.MathRandom(1, 1000000, 42)")
    assert all(run("States.MathRandom(1, 1000000, 42)") == first for _ in range(5))


def test_math_random_failures():
    assert "less than the end" in failure("States.MathRandom(5, 5)").cause
    assert "must be an integer" in failure("States.MathRandom('a', 5)").cause


def test_math_add():
    assert run("States.MathAdd(111, -1)") == 110
    assert run("States.MathAdd(1.5, 2.4)") == 4  # 2 + 2: each argument rounded half up
    assert run("States.MathAdd(-2147483648, 2147483647)") == -1
    assert "outside the range" in failure("States.MathAdd(2147483648, 0)").cause
    assert "32-bit" in failure("States.MathAdd(2147483647, 1)").cause
    assert "must be an integer" in failure("States.MathAdd('1', 1)").cause


def test_string_split():
    assert run("States.StringSplit('1,2,3,4,5', ',')") == ["1", "2", "3", "4", "5"]
    assert run("States.StringSplit('This.is+a,test=string', '.+,=')") == ["This", "is", "a", "test", "string"]
    assert run("States.StringSplit('a,,b,', ',')") == ["a", "b"]
    assert run("States.StringSplit('a]b', ']')") == ["a", "b"]
    assert "must not be empty" in failure("States.StringSplit('abc', '')").cause
    assert "must be a string" in failure("States.StringSplit(1, ',')").cause


def test_uuid_is_a_fresh_version_4_uuid():
    first, second = run("States.UUID()"), run("States.UUID()")
    assert uuid.UUID(first).version == 4
    assert first != second


def test_nested_calls_from_the_aws_documentation():
    expression = (
        "States.Format('{}.{}', "
        "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.arn, '/'), 2), '.'), 0), "
        "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.arn, '/'), 2), '.'), 1))"
    )
    assert run(expression) == "1.0"


def test_paths_with_brackets_and_commas_as_arguments():
    data = {"a,b": [10, 20], "list": [{"k": "x"}, {"k": "y"}]}
    assert run("States.Array($['a,b'][1], $.list[?(@.k == 'y')])", data) == [20, [{"k": "y"}]]


def test_a_missing_path_argument_fails_with_states_runtime():
    error = failure("States.Array($.missing)")
    assert error.error == "States.Runtime"
    assert "$.missing" in error.cause


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("States.Nope(1)", "unknown intrinsic function States.Nope"),
        ("States.Array(", "expected a quoted string"),
        ("States.Array(1", "expected ',' or ')'"),
        ("States.Array(1) trailing", "unexpected text"),
        ("States.Format('unterminated)", "unterminated string literal"),
        ("States.Format('bad \\x escape')", "a backslash must escape"),
        ("States.UUID(1)", "States.UUID takes 0 argument(s), got 1"),
        ("States.ArrayRange(1, 2)", "States.ArrayRange takes 3 argument(s), got 2"),
        ("States.MathRandom(1)", "States.MathRandom takes 2 to 3 argument(s), got 1"),
        ("States.Format()", "States.Format takes at least 1 argument(s), got 0"),
        ("States.Array(nope)", "expected a quoted string"),
        ("States.Array(" * 11 + ")" * 11, "more than 10 nested"),
    ],
)
def test_malformed_expressions_fail_naming_the_problem(expression, problem):
    error = failure(expression)
    assert error.error == "States.IntrinsicFailure"
    assert problem in error.cause
    assert problem in expression_problem(expression)


def test_ten_nested_calls_are_allowed():
    assert run("States.Array(" * 10 + ")" * 10) == [[[[[[[[[[]]]]]]]]]]
    assert expression_problem("States.Array(" * 10 + ")" * 10) is None


def test_is_intrinsic():
    assert is_intrinsic("States.Array()")
    assert not is_intrinsic("$.a")
    assert not is_intrinsic(3)


def test_evaluation_does_not_mutate_the_data():
    data = json.loads(json.dumps(DATA))
    run("States.JsonMerge($.json1, $.json2, false)", data)
    run("States.ArrayUnique($.numbers)", data)
    assert data == DATA
