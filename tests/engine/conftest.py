"""Every test in tests/engine is marked `unit`; fixtures for an engine on virtual time."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localsfn import Engine, VirtualClock


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folder = config.rootpath / "tests" / "engine"
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def functions() -> dict[str, Callable]:
    """Lambda ARN -> handler; tests add to it before running a definition."""
    return {}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=1_800_000_000.0)


@pytest.fixture
def engine(tmp_path: Path, functions: dict, clock: VirtualClock) -> Iterator[Engine]:
    engine = Engine(tmp_path / "journal.sqlite", functions, clock=clock)
    yield engine
    engine.close()


class Run:
    """A finished execution: its description, output and history."""

    def __init__(self, engine: Engine, arn: str, description: dict) -> None:
        self.arn = arn
        self.description = description
        self.status = description["status"]
        self.output = json.loads(description["output"]) if "output" in description else None
        self.error = description.get("error")
        self.cause = description.get("cause")
        self.history = engine.get_execution_history(arn)

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.history]

    def events(self, kind: str) -> list[dict]:
        return [event for event in self.history if event["type"] == kind]


@pytest.fixture
def run(engine: Engine) -> Callable[..., Run]:
    """run(definition, input) -> Run: create the machine, start, wait for the end."""
    counter = iter(range(1_000_000))

    def run_definition(definition: dict, execution_input: Any = None, name: str | None = None, timeout: float = 20.0) -> Run:
        machine = engine.create_state_machine(f"machine-{next(counter)}", json.dumps(definition))
        arn = engine.start_execution(machine, json.dumps({} if execution_input is None else execution_input), name=name)
        return Run(engine, arn, engine.wait_for_execution(arn, timeout=timeout))

    return run_definition

