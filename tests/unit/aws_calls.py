"""Which AWS API operations a Lambda handler's code can reach: a static over-approximation, for IAM tests.

Starting from a handler (`lambdas.reconcile.handler`), follow every name a
function refers to (a call, a decorator, a function passed as a value) into
the `lambdas` modules it resolves to, module-level imports included. A
reached function that makes a client of `service` (`aws.client("rds")`,
`boto3.client("rds")`) contributes each method of that client it names
(`describe_db_instances(...)`, `get_paginator("describe_db_parameters")`),
as the operation IAM knows (`DescribeDBInstances`).

Over-approximate by design: a class reached brings all its methods, and a
name reached on any path counts. It cannot see a client passed in as an
argument; the code here creates its clients where it calls them, and the
tests check that the calls they know of are found.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import boto3

PACKAGE = "lambdas"


@dataclass
class _Module:
    name: str
    definitions: dict[str, ast.AST] = field(default_factory=dict)  # top-level functions and classes
    imported: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local name -> (module, attribute)
    # What runs on import: top-level statements other than definitions, and the definitions
    # a decorator registers (a route).
    on_import: list[ast.AST] = field(default_factory=list)


@cache
def _operations(service: str) -> dict[str, str]:
    """Client method name -> API operation name, from botocore's service model (no call is made)."""
    client = boto3.session.Session().client(service, region_name="us-east-1",
                                            aws_access_key_id="x", aws_secret_access_key="x")
    return dict(client.meta.method_to_api_mapping)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@cache
def _module(name: str) -> _Module | None:
    if not (name == PACKAGE or name.startswith(PACKAGE + ".")) or not _is_module(name):
        return None
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"), spec.origin)
    module = _Module(name)
    is_package = spec.origin.endswith("__init__.py")
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                module.imported[alias.asname or alias.name.split(".")[0]] = (
                    (alias.name, None) if alias.asname else (alias.name.split(".")[0], None))
        elif isinstance(statement, ast.ImportFrom):
            base = statement.module or ""
            if statement.level:
                parts = name.split(".")[: len(name.split(".")) - statement.level + (1 if is_package else 0)]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in statement.names:
                local = alias.asname or alias.name
                submodule = f"{base}.{alias.name}"
                module.imported[local] = (submodule, None) if _is_module(submodule) else (base, alias.name)
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            module.definitions[statement.name] = statement
            if any(_registers(decorator) for decorator in statement.decorator_list):
                module.on_import.append(statement)
        elif not isinstance(statement, ast.Import | ast.ImportFrom):
            module.on_import.append(statement)
    return module


def _registers(decorator: ast.expr) -> bool:
    """Whether a decorator registers its function on import, as a route does (`@router.get("/x")`)."""
    return isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)


def _resolve(module_name: str, attribute: str, seen: frozenset[tuple[str, str]] = frozenset()) -> tuple[str, str] | None:
    """Where `module_name.attribute` is defined, following re-exports; None outside `lambdas`."""
    module = _module(module_name)
    if module is None or (module_name, attribute) in seen:
        return None
    if attribute in module.definitions:
        return module_name, attribute
    if attribute in module.imported:
        target, target_attribute = module.imported[attribute]
        if target_attribute is not None:
            return _resolve(target, target_attribute, seen | {(module_name, attribute)})
    return None


def _references(module: _Module, node: ast.AST) -> tuple[set[tuple[str, str]], set[str]]:
    """The `lambdas` definitions a function, class or statement names, and the modules it uses."""
    found: set[tuple[str, str]] = set()
    modules: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            if child.id in module.definitions:
                found.add((module.name, child.id))
            elif child.id in module.imported:
                target, attribute = module.imported[child.id]
                resolved = _resolve(target, attribute) if attribute else None
                if resolved:
                    found.add(resolved)
                modules.add(resolved[0] if resolved else target)
        elif isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name):
            imported = module.imported.get(child.value.id)
            if imported and imported[1] is None:
                resolved = _resolve(imported[0], child.attr)
                if resolved:
                    found.add(resolved)
    return found, {name for name in modules if _module(name) is not None}


def _makes_client(node: ast.AST, service: str) -> bool:
    for child in ast.walk(node):
        if (isinstance(child, ast.Call) and child.args and isinstance(child.args[0], ast.Constant)
                and child.args[0].value == service
                and (getattr(child.func, "attr", None) == "client" or getattr(child.func, "id", None) == "client")):
            return True
    return False


def _calls_in(node: ast.AST, service: str) -> set[str]:
    operations = _operations(service)
    calls: set[str] = set()
    for child in ast.walk(node):
        if not (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)):
            continue
        method = child.func.attr
        if method in operations:
            calls.add(operations[method])
        elif method == "get_paginator" and child.args and isinstance(child.args[0], ast.Constant):
            calls.add(operations[child.args[0].value])
    return calls


def reachable_definitions(entry: str) -> set[tuple[str, str]]:
    """Every `lambdas` function or class reachable from `entry` ("package.module.name"), `entry` included."""
    module_name, _, attribute = entry.rpartition(".")
    start = _resolve(module_name, attribute)
    if start is None:
        raise ValueError(f"{entry} is not a function or class of the {PACKAGE} package")
    reached: set[tuple[str, str]] = set()
    imported: set[str] = set()
    pending: list[tuple[str, ast.AST]] = []  # (module, code to scan)

    def reach(definition: tuple[str, str]) -> None:
        if definition not in reached:
            reached.add(definition)
            module = _module(definition[0])
            assert module is not None
            pending.append((definition[0], module.definitions[definition[1]]))
            use(definition[0])

    def use(module_name: str) -> None:
        if module_name not in imported:
            imported.add(module_name)
            module = _module(module_name)
            assert module is not None
            for statement in module.on_import:
                if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    reach((module_name, statement.name))
                else:
                    pending.append((module_name, statement))

    reach(start)
    while pending:
        module_name, node = pending.pop()
        module = _module(module_name)
        assert module is not None
        definitions, modules = _references(module, node)
        for definition in definitions:
            reach(definition)
        for used in modules:
            use(used)
    return reached


def reachable_operations(entry: str, service: str) -> set[str]:
    """The `service` API operations (IAM action names without the prefix) the code of `entry` can call."""
    operations: set[str] = set()
    for module_name, name in reachable_definitions(entry):
        module = _module(module_name)
        assert module is not None
        node = module.definitions[name]
        if _makes_client(node, service):
            operations |= _calls_in(node, service)
    return operations
