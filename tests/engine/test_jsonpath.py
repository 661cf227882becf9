"""JSONPath reads, ResultPath writes and reference-path checks."""

import pytest

from localsfn.errors import StatesError
from localsfn.jsonpath import is_reference_path, path_exists, path_problem, read_path, write_result

STORE = {
    "store": {
        "book": [
            {"title": "Sayings", "price": 8.95, "isbn": "0-553"},
            {"title": "Sword", "price": 12.99},
            {"title": "Moby", "price": 8.99, "isbn": "0-395"},
        ],
        "bicycle": {"color": "red", "price": 19.95},
    },
    "with space": {"inner key": 1},
    "flag": False,
    "nothing": None,
    "zero": 0,
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", STORE),
        ("$.store.bicycle.color", "red"),
        ("$.store.book[0].title", "Sayings"),
        ("$.store.book[-1].title", "Moby"),
        ("$['with space']['inner key']", 1),
        ('$["with space"]', {"inner key": 1}),
        ("$.store.['bicycle'].price", 19.95),
        ("$.flag", False),
        ("$.nothing", None),
        ("$.zero", 0),
    ],
)
def test_definite_paths_return_the_value(path, expected):
    assert read_path(path, STORE) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.store.book[*].title", ["Sayings", "Sword", "Moby"]),
        ("$.store.book[0:2].price", [8.95, 12.99]),
        ("$.store.book[1:].title", ["Sword", "Moby"]),
        ("$.store.book[::2].title", ["Sayings", "Moby"]),
        ("$.store.book[0,2].title", ["Sayings", "Moby"]),
        ("$.store.bicycle['color','price']", ["red", 19.95]),
        ("$..price", [8.95, 12.99, 8.99, 19.95]),
        ("$.store..isbn", ["0-553", "0-395"]),
        ("$.store.*.color", ["red"]),
        ("$.store.book[?(@.price < 10)].title", ["Sayings", "Moby"]),
        ("$.store.book[?(@.price >= 12.99)].title", ["Sword"]),
        ("$.store.book[?(@.isbn)].title", ["Sayings", "Moby"]),
        ("$.store.book[?(!@.isbn)].title", ["Sword"]),
        ("$.store.book[?(@.title == 'Sword' || @.price > 8.98)].title", ["Sword", "Moby"]),
        ("$.store.book[?(@.price < 10 && @.isbn == '0-395')].title", ["Moby"]),
        ("$.store.book[?(@.title != 'Sword')].price", [8.95, 8.99]),
        ("$.store.book[?(@.price > $.store.bicycle.price)]", []),
        ("$.store.book[?(@.missing > 1)]", []),
        ("$.absent[*]", []),
    ],
)
def test_indefinite_paths_return_every_match(path, expected):
    assert read_path(path, STORE) == expected


def test_filter_comparisons_do_not_mix_types():
    items = [{"v": 1}, {"v": "1"}, {"v": True}, {"v": None}]
    assert read_path("$[?(@.v == 1)]", items) == [{"v": 1}]
    assert read_path("$[?(@.v == '1')]", items) == [{"v": "1"}]
    assert read_path("$[?(@.v == true)]", items) == [{"v": True}]
    assert read_path("$[?(@.v == null)]", items) == [{"v": None}]
    assert read_path("$[?(@.v < 2)]", items) == [{"v": 1}]


def test_context_paths_read_the_context_object():
    context = {"Execution": {"Id": "arn:execution", "Name": "run-1"}, "State": {"Name": "CreateSlot"}}
    assert read_path("$$.Execution.Id", {"ignored": 1}, context) == "arn:execution"
    assert read_path("$$", {}, context) is context
    assert read_path("$$.State['Name']", {}, context) == "CreateSlot"


def test_context_path_without_a_context_fails():
    with pytest.raises(StatesError) as raised:
        read_path("$$.Execution.Id", {})
    assert raised.value.error == "States.Runtime"
    assert "$$.Execution.Id" in raised.value.cause


@pytest.mark.parametrize(
    ("path", "normalized"),
    [
        ("$.missing", "$['missing']"),
        ("$.store.book[7].title", "$['store']['book'][7]['title']"),
        ("$.store.bicycle.color.shade", "$['store']['bicycle']['color']['shade']"),
        ("$.store.book.title", "$['store']['book']['title']"),  # a name on an array
        ("$.store[0]", "$['store'][0]"),  # an index on an object
    ],
)
def test_a_definite_path_that_matches_nothing_fails_naming_the_path(path, normalized):
    with pytest.raises(StatesError) as raised:
        read_path(path, STORE)
    assert raised.value.error == "States.Runtime"
    assert raised.value.cause == f"Invalid path '{path}' : No results for path: {normalized}"


@pytest.mark.parametrize("path", ["", "store", "$.", "$.a[", "$.a[1", "$.a['b]", "$[?(@.a >)]", "$.a[::0]", "$[x]", "$.a b]"])
def test_malformed_paths_fail_clearly(path):
    with pytest.raises(StatesError) as raised:
        read_path(path, STORE)
    assert raised.value.error == "States.Runtime"
    assert "Invalid JSONPath" in raised.value.cause
    assert path_problem(path) is not None


def test_path_problem_accepts_valid_paths_and_rejects_non_strings():
    assert path_problem("$.store.book[*]") is None
    assert path_problem("$$.Execution.Id") is None
    assert "string" in path_problem(3)


def test_path_exists():
    assert path_exists("$.store.bicycle", STORE)
    assert path_exists("$.nothing", STORE)  # present, holding null
    assert not path_exists("$.store.car", STORE)
    assert not path_exists("$.store.book[3]", STORE)
    assert not path_exists("$.flag.deeper", STORE)


@pytest.mark.parametrize(
    ("path", "is_reference"),
    [
        ("$", True),
        ("$.a.b", True),
        ("$['a b'][0]", True),
        ("$.a[-1]", True),
        ("$.a[*]", False),
        ("$..a", False),
        ("$.a[0:1]", False),
        ("$.a[?(@.x)]", False),
        ("$.a['b','c']", False),
        ("$$.Execution", False),
        ("a.b", False),
        (None, False),
    ],
)
def test_is_reference_path(path, is_reference):
    assert is_reference_path(path) is is_reference


def test_result_path_null_keeps_the_input():
    state_input = {"a": 1}
    assert write_result(None, state_input, {"dropped": True}) is state_input


def test_result_path_root_replaces_the_input():
    assert write_result("$", {"a": 1}, [1, 2]) == [1, 2]


def test_result_path_sets_a_field_on_a_copy_creating_objects():
    state_input = {"spec": {"id": "orders"}, "results": {"CreateSlot": {"slot": "s"}}}
    output = write_result("$.results.CreateTopics.detail", state_input, {"topics": 3})
    assert output == {
        "spec": {"id": "orders"},
        "results": {"CreateSlot": {"slot": "s"}, "CreateTopics": {"detail": {"topics": 3}}},
    }
    assert state_input == {"spec": {"id": "orders"}, "results": {"CreateSlot": {"slot": "s"}}}
    output["spec"]["id"] = "changed"
    assert state_input["spec"]["id"] == "orders"  # a deep copy, not shared


def test_result_path_replaces_an_existing_value_and_array_items():
    assert write_result("$.a", {"a": {"old": 1}}, 2) == {"a": 2}
    assert write_result("$.list[1]", {"list": [1, 2, 3]}, "x") == {"list": [1, "x", 3]}
    assert write_result("$['odd key'].x", {}, 1) == {"odd key": {"x": 1}}


@pytest.mark.parametrize(
    ("path", "state_input"),
    [
        ("$.a.b", {"a": "text"}),
        ("$.a", "a string input"),
        ("$.a", [1, 2]),
        ("$.list[5]", {"list": [1]}),
        ("$.list[0]", {"list": {"0": 1}}),
    ],
)
def test_result_path_through_a_non_object_fails(path, state_input):
    with pytest.raises(StatesError) as raised:
        write_result(path, state_input, 1)
    assert raised.value.error == "States.ResultPathMatchFailure"
    assert path in raised.value.cause


@pytest.mark.parametrize("path", ["$.a[*]", "$..a", "$$.Execution"])
def test_result_path_must_be_a_reference_path(path):
    with pytest.raises(StatesError) as raised:
        write_result(path, {}, 1)
    assert raised.value.error == "States.Runtime"
    assert "not a reference path" in raised.value.cause
