"""The Lambda code's dependency rules: what each function's package may import.

A function ships `lambdas/` only, so nothing under it may import the CLI and
local stack (`cdcflow`), the CDK app (`infra`) or the engine (`localsfn`); and
one function's package does not reach into another's (the reconcile function
shares code with the API through plain modules, not by importing the API).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
OUTSIDE_THE_FUNCTIONS = ("cdcflow", "infra", "localsfn", "tests", "bench")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_no_lambda_module_imports_code_that_is_not_deployed():
    offenders = {
        f"{path.relative_to(LAMBDAS.parent)}: {module}"
        for path in LAMBDAS.rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in OUTSIDE_THE_FUNCTIONS
    }
    assert offenders == set()


@pytest.mark.parametrize(("package", "other"), [("lambdas.reconcile", "lambdas.api"), ("lambdas.api", "lambdas.reconcile")])
def test_one_function_does_not_load_another(package, other):
    """Checked in a fresh interpreter: importing the function's package leaves the other's unloaded."""
    probe = f"import sys, {package}; print(sorted(m for m in sys.modules if m == {other!r} or m.startswith({other!r} + '.')))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
