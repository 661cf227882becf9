"""JSONPath as Step Functions reads it (the JSONPath query language of ASL).

Step Functions evaluates paths with Jayway JsonPath. This module follows
its rules where they show:

* ``$`` is the data, ``$$`` the context object (``$$.Execution.Id``).
* A *definite* path (only names and single indexes: ``$.a.b``,
  ``$.a[0]``, ``$['b c']``, ``$.a[-1]``) yields one value and fails with
  ``States.Runtime`` when it matches nothing.
* An *indefinite* path (``[*]``, ``..``, slices, unions, filters
  ``[?(@.x > 1)]``) yields a list of every match, ``[]`` when none.

Parsed paths are cached, so evaluating the same path on every transition
costs one dictionary walk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from localsfn.errors import StatesError

JSON = Any
Selector = Callable[[JSON, JSON], Iterator[JSON]]
"""Given a node and the document root, yield the nodes a path segment selects."""

_MISSING = object()
_INTEGER = re.compile(r"\s*-?\d+\s*")
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")  # `$name`: a workflow variable
_LITERAL = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null")


class PathNotFound(StatesError):
    """A definite path matched nothing; keeps the path and the data it was read from."""

    def __init__(self, path: str, data: JSON) -> None:
        super().__init__("States.Runtime", f"Invalid path '{path}' : No results for path: {_bracketed(path)}")
        self.path = path
        self.data = data


@dataclass(frozen=True)
class _Step:
    """One segment of a path: what it selects and, if definite, how to name it."""

    select: Selector
    key: str | int | None  # the single name or index of a definite step, else None


@dataclass(frozen=True)
class CompiledPath:
    text: str
    on_context: bool  # `$$...` reads the context object
    steps: tuple[_Step, ...]
    definite: bool  # only names and single indexes: the path names at most one node
    variable: str | None = None  # `$name...` reads the workflow variable `name`

    def find(self, root: JSON) -> list[JSON]:
        """Every node the path selects, in document order."""
        nodes = [root]
        for step in self.steps:
            nodes = [found for node in nodes for found in step.select(node, root)]
            if not nodes:
                break
        return nodes


def read_path(path: str, data: JSON, context: dict | None = None) -> JSON:
    """Read `path` from `data` (or from `context` for a `$$` path).

    A definite path returns the value itself, an indefinite one the list of
    matches. Raises `StatesError("States.Runtime", ...)` naming the path when
    a definite path matches nothing or the path is malformed. Pure; never
    copies or mutates `data`.
    """
    compiled = compile_path(path)
    root = data
    if compiled.variable is not None:
        root = _variable(compiled.variable, path, context)
    elif compiled.on_context:
        if context is None:
            raise StatesError("States.Runtime", f"The path '{path}' reads the context object, which is not available here")
        root = context
    if compiled.definite:
        node = root
        for step in compiled.steps:
            node = _definite_child(node, step.key)
            if node is _MISSING:
                raise PathNotFound(path, root)
        return node
    return compiled.find(root)


def path_exists(path: str, data: JSON, context: dict | None = None) -> bool:
    """True when `read_path(path, data, context)` would return a value rather than fail."""
    compiled = compile_path(path)
    if compiled.variable is not None:
        variables = getattr(context, "variables", None) or {}
        if compiled.variable not in variables:
            return False
        node = variables[compiled.variable]
    elif compiled.on_context and context is None:
        return False
    else:
        node = context if compiled.on_context else data
    if not compiled.definite:
        return True
    for step in compiled.steps:
        node = _definite_child(node, step.key)
        if node is _MISSING:
            return False
    return True


def is_reference_path(path: str) -> bool:
    """True for a path that names one node of the data: `$`, `$.a.b`, `$['a b'][0]`.

    ResultPath, ItemsPath and the like must be reference paths; `$$` paths,
    wildcards, slices, unions and filters are not.
    """
    if not isinstance(path, str):
        return False
    try:
        compiled = compile_path(path)
    except StatesError:
        return False
    return not compiled.on_context and compiled.definite and compiled.variable is None


def path_problem(path: object) -> str | None:
    """Why `path` is not a valid JSONPath, or None when it is (for definition validation)."""
    if not isinstance(path, str):
        return f"a path must be a string, got {json.dumps(path)}"
    try:
        compile_path(path)
    except StatesError as error:
        return error.cause
    return None


def write_result(result_path: str | None, state_input: JSON, result: JSON) -> JSON:
    """Place `result` into `state_input` the way ResultPath does.

    * None (JSON null in the definition): the input, unchanged.
    * ``$``: the result replaces the input.
    * ``$.a.b``: a deep copy of the input with ``a.b`` set to the result;
      missing objects along the way are created.

    Raises `StatesError("States.ResultPathMatchFailure", ...)` when the path
    goes through something other than an object (or an array, for an index
    step) and `StatesError("States.Runtime", ...)` when `result_path` is not
    a reference path. Never mutates `state_input`.
    """
    if result_path is None:
        return state_input
    compiled = compile_path(result_path)
    if compiled.on_context or not compiled.definite or compiled.variable is not None:
        raise StatesError("States.Runtime", f"ResultPath '{result_path}' is not a reference path")
    if not compiled.steps:
        return result

    document = copy_json(state_input)
    node = document
    trail = "$"
    last = len(compiled.steps) - 1
    for position, step in enumerate(compiled.steps):
        key = step.key
        if isinstance(key, str):
            if not isinstance(node, dict):
                raise _result_path_mismatch(result_path, trail, node)
            if position == last:
                node[key] = result
            else:
                child = node.get(key)
                if child is None:
                    child = node[key] = {}
                node = child
            trail += _bracket(key)
        else:
            if not isinstance(node, list) or _list_index(node, key) is None:
                raise _result_path_mismatch(result_path, trail, node, index=key)
            if position == last:
                node[_list_index(node, key)] = result
            else:
                node = node[_list_index(node, key)]
            trail += f"[{key}]"
    return document


def copy_json(value: JSON) -> JSON:
    """A deep copy of a JSON document (several times faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


def _result_path_mismatch(result_path: str, trail: str, node: JSON, index: int | None = None) -> StatesError:
    if index is not None and isinstance(node, list):
        problem = f"index {index} is outside the array at '{trail}' of length {len(node)}"
    else:
        expected = "an array" if index is not None else "an object"
        problem = f"'{trail}' holds {_kind(node)}, not {expected}"
    return StatesError("States.ResultPathMatchFailure", f"Unable to apply ResultPath '{result_path}' to the state input: {problem}")


def _kind(value: JSON) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _definite_child(node: JSON, key: str | int | None) -> JSON:
    if isinstance(key, str):
        if isinstance(node, dict):
            return node.get(key, _MISSING)
        return _MISSING
    if isinstance(node, list):
        index = _list_index(node, key)
        if index is not None:
            return node[index]
    return _MISSING


def _list_index(array: list, index: int) -> int | None:
    if index < 0:
        index += len(array)
    return index if 0 <= index < len(array) else None


def _bracket(name: str) -> str:
    return "['" + name.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _bracketed(path: str) -> str:
    """Jayway's normalized spelling of a path, `$['a'][0]`, as AWS prints it in errors."""
    try:
        compiled = compile_path(path)
    except StatesError:
        return path
    if not compiled.definite:
        return path
    root = "$$" if compiled.on_context else "$"
    return root + "".join(_bracket(s.key) if isinstance(s.key, str) else f"[{s.key}]" for s in compiled.steps)


# --------------------------------------------------------------------------- parsing


@lru_cache(maxsize=4096)
def compile_path(path: str) -> CompiledPath:
    """Parse a path once; raises `StatesError("States.Runtime", ...)` naming the problem."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise StatesError("States.Runtime", f"Invalid JSONPath {json.dumps(path)}: a path starts with '$'")
    on_context = path.startswith("$$")
    variable = _VARIABLE.match(path)
    start = variable.end() if variable else 2 if on_context else 1
    parser = _Parser(path, start, stop_chars="")
    steps = parser.steps()
    if parser.position != len(path):
        parser.fail("unexpected character")
    definite = all(step.key is not None for step in steps)
    return CompiledPath(path, on_context, steps, definite, variable.group(1) if variable else None)


def variable_name(path: str) -> str | None:
    """The workflow variable a `$name...` path reads, else None."""
    match = _VARIABLE.match(path) if isinstance(path, str) else None
    return match.group(1) if match else None


def _variable(name: str, path: str, context: dict | None) -> JSON:
    variables = getattr(context, "variables", None)
    if variables is None or name not in variables:
        raise StatesError("States.Runtime", f"Invalid path '{path}': the variable '{name}' is not defined")
    return variables[name]


class _Parser:
    """A recursive-descent reader of the JSONPath grammar Jayway accepts.

    `stop_chars` ends a dotted name early; inside a filter expression the
    operators and the closing parenthesis end `@.price` before `< 10`.
    """

    def __init__(self, text: str, position: int, stop_chars: str) -> None:
        self.text = text
        self.position = position
        self.stop_chars = stop_chars

    def fail(self, problem: str) -> NoReturn:
        raise StatesError("States.Runtime", f"Invalid JSONPath '{self.text}': {problem} at position {self.position}")

    def peek(self, offset: int = 0) -> str:
        index = self.position + offset
        return self.text[index] if index < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.position += 1

    def steps(self) -> tuple[_Step, ...]:
        steps: list[_Step] = []
        while self.position < len(self.text):
            char = self.peek()
            if char == "." and self.peek(1) == ".":
                self.position += 2
                inner = self.bracket() if self.peek() == "[" else self.dotted()
                steps.append(_Step(_descendants(inner.select), None))
            elif char == "." and self.peek(1) == "[":
                # `$.abc.['def ghi']`: Jayway accepts a bracket after a dot.
                self.position += 1
                steps.append(self.bracket())
            elif char == ".":
                self.position += 1
                steps.append(self.dotted())
            elif char == "[":
                steps.append(self.bracket())
            else:
                break
        return tuple(steps)

    def dotted(self) -> _Step:
        if self.peek() == "*":
            self.position += 1
            return _Step(_wildcard, None)
        start = self.position
        while self.position < len(self.text) and self.text[self.position] not in ".[" + self.stop_chars:
            self.position += 1
        if self.position == start:
            self.fail("expected a name after '.'")
        name = self.text[start : self.position]
        if "]" in name:
            self.fail("unexpected ']' in a name; quote it: ['a]b']")
        return _Step(_child((name,)), name)

    def bracket(self) -> _Step:
        self.position += 1  # "["
        self.skip_spaces()
        char = self.peek()
        if char == "*":
            self.position += 1
            step = _Step(_wildcard, None)
        elif char == "?":
            step = self.filter()
        elif char in ("'", '"'):
            names = [self.quoted()]
            self.skip_spaces()
            while self.peek() == ",":
                self.position += 1
                self.skip_spaces()
                names.append(self.quoted())
                self.skip_spaces()
            step = _Step(_child(tuple(names)), names[0] if len(names) == 1 else None)
        else:
            step = self.indexes()
        self.skip_spaces()
        if self.peek() != "]":
            self.fail("expected ']'")
        self.position += 1
        return step

    def quoted(self) -> str:
        quote = self.peek()
        if quote not in ("'", '"'):
            self.fail("expected a quoted name")
        self.position += 1
        chars: list[str] = []
        while True:
            char = self.peek()
            if char == "":
                self.fail("unterminated quoted name")
            self.position += 1
            if char == "\\":
                chars.append(self.peek())
                self.position += 1
            elif char == quote:
                return "".join(chars)
            else:
                chars.append(char)

    def integer(self) -> int | None:
        match = _INTEGER.match(self.text, self.position)
        if not match:
            return None
        self.position = match.end()
        return int(match.group())

    def indexes(self) -> _Step:
        first = self.integer()
        if self.peek() == ":":
            bounds: list[int | None] = [first]
            while self.peek() == ":" and len(bounds) < 3:
                self.position += 1
                bounds.append(self.integer())
            start, stop, *rest = bounds
            step = rest[0] if rest else None
            if step == 0:
                self.fail("a slice step cannot be 0")
            return _Step(_slice(slice(start, stop, step)), None)
        if first is None:
            self.fail("expected an index, a slice, a quoted name, '*' or a filter")
        indexes = [first]
        while self.peek() == ",":
            self.position += 1
            index = self.integer()
            if index is None:
                self.fail("expected an index after ','")
            indexes.append(index)
        return _Step(_indexes(tuple(indexes)), first if len(indexes) == 1 else None)

    def filter(self) -> _Step:
        self.position += 1  # "?"
        self.skip_spaces()
        if self.peek() != "(":
            self.fail("expected '(' after '?'")
        self.position += 1
        predicate = self.or_expression()
        self.skip_spaces()
        if self.peek() != ")":
            self.fail("expected ')' to close the filter")
        self.position += 1
        return _Step(_filtered(predicate), None)

    # Filter expressions: `||` binds looser than `&&`, `!` and parentheses group.

    def or_expression(self) -> Callable[[JSON, JSON], bool]:
        terms = [self.and_expression()]
        while self.take("||"):
            terms.append(self.and_expression())
        if len(terms) == 1:
            return terms[0]
        return lambda node, root: any(term(node, root) for term in terms)

    def and_expression(self) -> Callable[[JSON, JSON], bool]:
        terms = [self.unary()]
        while self.take("&&"):
            terms.append(self.unary())
        if len(terms) == 1:
            return terms[0]
        return lambda node, root: all(term(node, root) for term in terms)

    def unary(self) -> Callable[[JSON, JSON], bool]:
        self.skip_spaces()
        if self.peek() == "!" and self.peek(1) != "=":
            self.position += 1
            inner = self.unary()
            return lambda node, root: not inner(node, root)
        if self.peek() == "(":
            self.position += 1
            inner = self.or_expression()
            self.skip_spaces()
            if self.peek() != ")":
                self.fail("expected ')'")
            self.position += 1
            return inner
        left = self.operand()
        self.skip_spaces()
        for operator in ("==", "!=", "<=", ">=", "<", ">"):
            if self.take(operator):
                right = self.operand()
                compare = _COMPARISONS[operator]
                return lambda node, root: compare(left(node, root), right(node, root))
        # A bare `@.isbn` tests that the member exists, whatever its value.
        return lambda node, root: left(node, root) is not _MISSING

    def take(self, token: str) -> bool:
        self.skip_spaces()
        if self.text.startswith(token, self.position):
            self.position += len(token)
            return True
        return False

    def operand(self) -> Callable[[JSON, JSON], JSON]:
        self.skip_spaces()
        char = self.peek()
        if char in ("@", "$"):
            self.position += 1
            relative = char == "@"
            nested = _Parser(self.text, self.position, stop_chars=" )=<>!&|,")
            steps = nested.steps()
            self.position = nested.position
            keys = [step.key for step in steps]
            if any(key is None for key in keys):
                self.fail("a path inside a filter must be definite")

            def read(node: JSON, root: JSON) -> JSON:
                value = node if relative else root
                for key in keys:
                    value = _definite_child(value, key)
                    if value is _MISSING:
                        break
                return value

            return read
        if char in ("'", '"'):
            literal: JSON = self.quoted()
        else:
            match = _LITERAL.match(self.text, self.position)
            if not match:
                self.fail("expected '@', '$', a number, a string, true, false or null")
            self.position = match.end()
            literal = json.loads(match.group())
        return lambda node, root: literal


def _comparable(left: JSON, right: JSON) -> bool:
    """Jayway compares numbers with numbers and strings with strings; anything else is false."""
    if isinstance(left, bool) or isinstance(right, bool):
        return False
    both_numbers = isinstance(left, (int, float)) and isinstance(right, (int, float))
    return both_numbers or (isinstance(left, str) and isinstance(right, str))


def _equal(left: JSON, right: JSON) -> bool:
    if left is _MISSING or right is _MISSING:
        return False
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return left == right


_COMPARISONS: dict[str, Callable[[JSON, JSON], bool]] = {
    "==": _equal,
    "!=": lambda left, right: left is not _MISSING and right is not _MISSING and not _equal(left, right),
    "<": lambda left, right: _comparable(left, right) and left < right,
    "<=": lambda left, right: _comparable(left, right) and left <= right,
    ">": lambda left, right: _comparable(left, right) and left > right,
    ">=": lambda left, right: _comparable(left, right) and left >= right,
}


# --------------------------------------------------------------------------- selectors


def _child(names: tuple[str, ...]) -> Selector:
    def select(node: JSON, root: JSON) -> Iterator[JSON]:
        if isinstance(node, dict):
            for name in names:
                if name in node:
                    yield node[name]

    return select


def _indexes(indexes: tuple[int, ...]) -> Selector:
    def select(node: JSON, root: JSON) -> Iterator[JSON]:
        if isinstance(node, list):
            for index in indexes:
                position = _list_index(node, index)
                if position is not None:
                    yield node[position]

    return select


def _slice(bounds: slice) -> Selector:
    def select(node: JSON, root: JSON) -> Iterator[JSON]:
        if isinstance(node, list):
            yield from node[bounds]

    return select


def _wildcard(node: JSON, root: JSON) -> Iterator[JSON]:
    if isinstance(node, dict):
        yield from node.values()
    elif isinstance(node, list):
        yield from node


def _filtered(predicate: Callable[[JSON, JSON], bool]) -> Selector:
    def select(node: JSON, root: JSON) -> Iterator[JSON]:
        if isinstance(node, list):
            yield from (item for item in node if predicate(item, root))
        elif isinstance(node, dict) and predicate(node, root):
            yield node

    return select


def _descendants(inner: Selector) -> Selector:
    """`..x`: apply `inner` to the node and to every node below it, in document order."""

    def select(node: JSON, root: JSON) -> Iterator[JSON]:
        yield from inner(node, root)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                yield from select(child, root)

    return select


def input_path(state: dict, data: JSON, context: dict) -> JSON:
    """A state's effective input: its InputPath applied (absent: all of it; null: {})."""
    if "InputPath" not in state:
        return data
    return {} if state["InputPath"] is None else read_path(state["InputPath"], data, context)


def output_path(state: dict, data: JSON, context: dict) -> JSON:
    """A state's output: its OutputPath applied (absent: all of it; null: {})."""
    if "OutputPath" not in state:
        return data
    return {} if state["OutputPath"] is None else read_path(state["OutputPath"], data, context)
