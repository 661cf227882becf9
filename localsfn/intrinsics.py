"""Intrinsic functions (`States.Format(...)`, `States.ArrayRange(...)`, ...).

An expression is parsed once (cached) into a small tree of calls whose
arguments are literals (`'text'` with the escapes \\' \\{ \\} \\\\, numbers,
true, false, null), paths (`$.a`, `$$.Execution.Id`) or nested calls, and
is then evaluated against the state's data and the context object.

Argument rules follow the AWS documentation of each function
(https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html):
a bad argument raises `StatesError("States.IntrinsicFailure", ...)`
naming the function and the problem; a path that matches nothing raises
`States.Runtime` (from `localsfn.jsonpath`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from localsfn.errors import StatesError
from localsfn.jsonpath import read_path

JSON = Any

MAX_NESTING = 10  # "You can nest up to 10 intrinsic functions within a field"
MAX_ARRAY_RANGE_ITEMS = 1000
MAX_INPUT_CHARS = 10_000  # Base64Encode, Base64Decode and Hash
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
HASH_ALGORITHMS: dict[str, Callable[[bytes], Any]] = {
    "MD5": hashlib.md5,
    "SHA-1": hashlib.sha1,
    "SHA-256": hashlib.sha256,
    "SHA-384": hashlib.sha384,
    "SHA-512": hashlib.sha512,
}


@dataclass(frozen=True)
class Literal:
    value: JSON


@dataclass(frozen=True)
class Text:
    """A quoted string literal; `pieces` is the text split at its unescaped `{}` placeholders."""

    value: str
    pieces: tuple[str, ...]


@dataclass(frozen=True)
class PathArgument:
    path: str


@dataclass(frozen=True)
class Call:
    name: str
    arguments: tuple[Argument, ...]


Argument = Literal | Text | PathArgument | Call


def is_intrinsic(expression: object) -> bool:
    """True when a `.$` value is an intrinsic call rather than a path."""
    return isinstance(expression, str) and expression.startswith("States.")


def evaluate(expression: str, data: JSON, context: dict) -> JSON:
    """Evaluate an intrinsic call such as `States.Format('{}-{}', $.a, $$.Execution.Name)`.

    Pure apart from States.UUID and an unseeded States.MathRandom.
    Raises `StatesError("States.IntrinsicFailure", ...)` for a malformed
    expression or a bad argument, `StatesError("States.Runtime", ...)` for
    a path argument that matches nothing.
    """
    return _evaluate(parse(expression), data, context)


def expression_problem(expression: str) -> str | None:
    """Why `expression` is not a well-formed intrinsic call, or None (for definition validation)."""
    try:
        parse(expression)
    except StatesError as error:
        return error.cause
    return None


def _evaluate(node: Argument, data: JSON, context: dict) -> JSON:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Text):
        return node.value
    if isinstance(node, PathArgument):
        return read_path(node.path, data, context)
    values = [_evaluate(argument, data, context) for argument in node.arguments]
    if node.name == "States.Format":
        return _format(node, values)
    function = _FUNCTIONS[node.name][0]
    try:
        return function(*values)
    except _BadArgument as problem:
        raise _failure(node.name, str(problem)) from None


class _BadArgument(Exception):
    """Raised by a function body; becomes States.IntrinsicFailure naming the function."""


def _failure(name: str, problem: str) -> StatesError:
    return StatesError("States.IntrinsicFailure", f"{name}: {problem}")


# --------------------------------------------------------------------------- the functions


def _format(call: Call, values: list[JSON]) -> str:
    if not values:
        raise _failure(call.name, "takes a template string and one value per '{}' in it")
    template_node, template, arguments = call.arguments[0], values[0], values[1:]
    if not isinstance(template, str):
        raise _failure(call.name, f"the template must be a string, got {_describe(template)}")
    # In a quoted template `\{}` is literal text; a template read from a path has no escapes.
    pieces = template_node.pieces if isinstance(template_node, Text) else tuple(template.split("{}"))
    if len(pieces) - 1 != len(arguments):
        raise _failure(call.name, f"the template has {len(pieces) - 1} '{{}}' placeholder(s) but {len(arguments)} value(s) were given")
    parts = [pieces[0]]
    for argument, piece in zip(arguments, pieces[1:]):
        parts.append(_format_value(argument))
        parts.append(piece)
    return "".join(parts)


def _format_value(value: JSON) -> str:
    """How Step Functions prints a value into a template: Java's Map/List style for containers."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={_format_value(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


def _string_to_json(text: JSON) -> JSON:
    text = _require_string(text, "the argument")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _BadArgument(f"the argument is not valid JSON ({error.msg} at position {error.pos})") from None


def _json_to_string(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _array(*values: JSON) -> list:
    return list(values)


def _array_partition(array: JSON, chunk_size: JSON) -> list:
    array = _require_array(array, "the first argument")
    size = _require_integer(chunk_size, "the chunk size")
    if size <= 0:
        raise _BadArgument(f"the chunk size must be a positive integer, got {size}")
    return [array[start : start + size] for start in range(0, len(array), size)]


def _array_contains(array: JSON, value: JSON) -> bool:
    array = _require_array(array, "the first argument")
    return any(_json_equal(item, value) for item in array)


def _array_range(first: JSON, last: JSON, step: JSON) -> list[int]:
    start = _require_integer(first, "the first element")
    end = _require_integer(last, "the last element")
    increment = _require_integer(step, "the step")
    if increment == 0:
        raise _BadArgument("the step must not be 0")
    count = max(0, (end - start) // increment + 1)
    if count > MAX_ARRAY_RANGE_ITEMS:
        raise _BadArgument(f"the array would have {count} items; at most {MAX_ARRAY_RANGE_ITEMS} are allowed")
    return [start + i * increment for i in range(count)]


def _array_get_item(array: JSON, index: JSON) -> JSON:
    array = _require_array(array, "the first argument")
    if isinstance(index, bool) or not isinstance(index, int):
        raise _BadArgument(f"the index must be an integer, got {_describe(index)}")
    if not 0 <= index < len(array):
        raise _BadArgument(f"index {index} is outside the array of length {len(array)}")
    return array[index]


def _array_length(array: JSON) -> int:
    return len(_require_array(array, "the argument"))


def _array_unique(array: JSON) -> list:
    seen: set[str] = set()
    unique = []
    for item in _require_array(array, "the argument"):
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _base64_encode(text: JSON) -> str:
    text = _require_string(text, "the argument", MAX_INPUT_CHARS)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _base64_decode(encoded: JSON) -> str:
    encoded = _require_string(encoded, "the argument", MAX_INPUT_CHARS)
    try:
        return base64.b64decode(encoded.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError):
        raise _BadArgument("the argument is not Base64-encoded UTF-8 text") from None


def _hash(data: JSON, algorithm: JSON) -> str:
    text = _require_string(data, "the data", MAX_INPUT_CHARS)
    if algorithm not in HASH_ALGORITHMS:
        raise _BadArgument(f"unknown algorithm {_describe(algorithm)}; use one of {', '.join(HASH_ALGORITHMS)}")
    return HASH_ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


def _json_merge(first: JSON, second: JSON, deep: JSON) -> dict:
    for position, value in (("first", first), ("second", second)):
        if not isinstance(value, dict):
            raise _BadArgument(f"the {position} argument must be a JSON object, got {_describe(value)}")
    if deep is not False:
        raise _BadArgument(f"only shallow merging is supported: the third argument must be false, got {_describe(deep)}")
    return {**first, **second}


def _math_random(start: JSON, end: JSON, seed: JSON = None) -> int:
    low = _require_integer(start, "the start")
    high = _require_integer(end, "the end")
    if low >= high:
        raise _BadArgument(f"the start ({low}) must be less than the end ({high})")
    generator = random.Random(_require_integer(seed, "the seed")) if seed is not None else random
    return generator.randrange(low, high)  # start inclusive, end exclusive, as AWS documents


def _math_add(first: JSON, second: JSON) -> int:
    total = _require_int32(first, "the first argument") + _require_int32(second, "the second argument")
    if not INT32_MIN <= total <= INT32_MAX:
        raise _BadArgument(f"the sum {total} is outside the 32-bit integer range")
    return total


def _string_split(text: JSON, delimiters: JSON) -> list[str]:
    text = _require_string(text, "the first argument")
    delimiters = _require_string(delimiters, "the delimiter")
    if not delimiters:
        raise _BadArgument("the delimiter must not be empty")
    # Every character of the second argument delimits; empty pieces are dropped.
    pieces = re.split("[" + re.escape(delimiters) + "]", text)
    return [piece for piece in pieces if piece]


def _uuid() -> str:
    return str(uuid.uuid4())


_FUNCTIONS: dict[str, tuple[Callable[..., JSON], int, int | None]] = {
    # name: (function, fewest arguments, most arguments or None for any number)
    "States.StringToJson": (_string_to_json, 1, 1),
    "States.JsonToString": (_json_to_string, 1, 1),
    "States.Array": (_array, 0, None),
    "States.ArrayPartition": (_array_partition, 2, 2),
    "States.ArrayContains": (_array_contains, 2, 2),
    "States.ArrayRange": (_array_range, 3, 3),
    "States.ArrayGetItem": (_array_get_item, 2, 2),
    "States.ArrayLength": (_array_length, 1, 1),
    "States.ArrayUnique": (_array_unique, 1, 1),
    "States.Base64Encode": (_base64_encode, 1, 1),
    "States.Base64Decode": (_base64_decode, 1, 1),
    "States.Hash": (_hash, 2, 2),
    "States.JsonMerge": (_json_merge, 3, 3),
    "States.MathRandom": (_math_random, 2, 3),
    "States.MathAdd": (_math_add, 2, 2),
    "States.StringSplit": (_string_split, 2, 2),
    "States.UUID": (_uuid, 0, 0),
}
FUNCTION_NAMES = frozenset(_FUNCTIONS) | {"States.Format"}


# --------------------------------------------------------------------------- argument checks


def _describe(value: JSON) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _require_string(value: JSON, what: str, max_chars: int | None = None) -> str:
    if not isinstance(value, str):
        raise _BadArgument(f"{what} must be a string, got {_describe(value)}")
    if max_chars is not None and len(value) > max_chars:
        raise _BadArgument(f"{what} has {len(value)} characters; at most {max_chars} are allowed")
    return value


def _require_array(value: JSON, what: str) -> list:
    if not isinstance(value, list):
        raise _BadArgument(f"{what} must be an array, got {_describe(value)}")
    return value


def _require_integer(value: JSON, what: str) -> int:
    """An integer argument; AWS rounds a non-integer number to the nearest integer (half up, as Java's Math.round)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _BadArgument(f"{what} must be an integer, got {_describe(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _BadArgument(f"{what} must be an integer, got {value}")
        return math.floor(value + 0.5)
    return value


def _require_int32(value: JSON, what: str) -> int:
    number = _require_integer(value, what)
    if not INT32_MIN <= number <= INT32_MAX:
        raise _BadArgument(f"{what} ({number}) is outside the range {INT32_MIN} to {INT32_MAX}")
    return number


def _json_equal(left: JSON, right: JSON) -> bool:
    """JSON equality: unlike Python's ==, true is not 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[key], right[key]) for key in left)
    return type(left) is type(right) and left == right


# --------------------------------------------------------------------------- parsing


@lru_cache(maxsize=2048)
def parse(expression: str) -> Call:
    """Parse an intrinsic call once; raises States.IntrinsicFailure naming the problem and where."""
    if not isinstance(expression, str):
        raise StatesError("States.IntrinsicFailure", f"an intrinsic function call must be a string, got {json.dumps(expression)}")
    parser = _Parser(expression)
    parser.skip_spaces()
    call = parser.call(depth=1)
    parser.skip_spaces()
    if parser.position != len(expression):
        parser.fail("unexpected text after the closing ')'")
    return call


_NAME = re.compile(r"States\.[A-Za-z0-9]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_KEYWORD = re.compile(r"(true|false|null)(?=[\s,)])")
_ESCAPABLE = "'{}\\"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def fail(self, problem: str) -> NoReturn:
        raise StatesError(
            "States.IntrinsicFailure",
            f"Invalid intrinsic function call '{self.text}': {problem} at position {self.position}",
        )

    def peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.peek().isspace():
            self.position += 1

    def call(self, depth: int) -> Call:
        if depth > MAX_NESTING:
            self.fail(f"more than {MAX_NESTING} nested intrinsic functions")
        match = _NAME.match(self.text, self.position)
        if not match:
            self.fail("expected a function name such as States.Format")
        name = match.group()
        if name not in FUNCTION_NAMES:
            self.fail(f"unknown intrinsic function {name}")
        self.position = match.end()
        self.skip_spaces()
        if self.peek() != "(":
            self.fail(f"expected '(' after {name}")
        self.position += 1
        arguments: list[Argument] = []
        self.skip_spaces()
        if self.peek() == ")":
            self.position += 1
        else:
            while True:
                self.skip_spaces()
                arguments.append(self.argument(depth))
                self.skip_spaces()
                char = self.peek()
                if char not in (",", ")"):
                    self.fail("expected ',' or ')'")
                self.position += 1
                if char == ")":
                    break
        minimum, maximum = (1, None) if name == "States.Format" else _FUNCTIONS[name][1:]
        if not minimum <= len(arguments) <= (len(arguments) if maximum is None else maximum):
            expected = f"at least {minimum}" if maximum is None else str(minimum) if minimum == maximum else f"{minimum} to {maximum}"
            self.fail(f"{name} takes {expected} argument(s), got {len(arguments)}")
        return Call(name, tuple(arguments))

    def argument(self, depth: int) -> Argument:
        char = self.peek()
        if char == "'":
            return self.text_literal()
        if char == "$":
            return PathArgument(self.path())
        if self.text.startswith("States.", self.position):
            return self.call(depth + 1)
        for pattern in (_NUMBER, _KEYWORD):
            match = pattern.match(self.text, self.position)
            if match:
                self.position = match.end()
                return Literal(json.loads(match.group()))
        self.fail("expected a quoted string, a number, true, false, null, a path or a States.* call")

    def text_literal(self) -> Text:
        self.position += 1  # opening quote
        pieces: list[str] = []
        current: list[str] = []
        while True:
            char = self.peek()
            if char == "":
                self.fail("unterminated string literal")
            self.position += 1
            if char == "\\":
                escaped = self.peek()
                if escaped == "" or escaped not in _ESCAPABLE:
                    self.fail("a backslash must escape one of ' { } \\")
                current.append(escaped)
                self.position += 1
            elif char == "'":
                pieces.append("".join(current))
                return Text("{}".join(pieces), tuple(pieces))
            elif char == "{" and self.peek() == "}":
                pieces.append("".join(current))
                current = []
                self.position += 1
            else:
                current.append(char)

    def path(self) -> str:
        """A path runs to the next ',' or ')' outside brackets, parentheses and quotes."""
        start = self.position
        depth = 0
        quote = ""
        while self.position < len(self.text):
            char = self.text[self.position]
            if quote:
                if char == "\\":
                    self.position += 1
                elif char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            elif char in "[(":
                depth += 1
            elif char in "])":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and (char == "," or char.isspace()):
                break
            self.position += 1
        return self.text[start : self.position]
