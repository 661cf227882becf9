"""Every test in tests/engine is marked `unit`; fixtures for an engine on virtual time, and for one in a process of its own."""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
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



# ---------------------------------------------------------------------- an engine process to SIGKILL

CRASH_DIR = Path(__file__).parent / "crash"


class EngineProcess:
    """`python -m localsfn --db JOURNAL --functions ledger_functions:FUNCTIONS` in a subprocess: start, SIGKILL, restart.

    The functions (tests/engine/crash/ledger_functions.py) record every call
    in the SQLite ledger named by CRASH_LEDGER, so a test sees each side
    effect, including those of calls the killed engine never heard back
    from. `environment` is added to the process's (e.g. an S3 endpoint).
    """

    def __init__(self, journal: Path, ledger: Path, started: list[EngineProcess]) -> None:
        self.journal, self.ledger = journal, ledger
        self.environment: dict[str, str] = {}
        self.process: subprocess.Popen | None = None
        self.client = None
        self._started = started

    def spawn(self, stderr: int | None = None) -> subprocess.Popen:
        """The process, started; it prints its endpoint once it serves (or exits, e.g. on a journal another engine holds)."""
        environment = {
            **os.environ, **self.environment, "CRASH_LEDGER": str(self.ledger),
            "PYTHONPATH": os.pathsep.join([str(CRASH_DIR), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localsfn", "--db", str(self.journal), "--port", "0", "--functions", "ledger_functions:FUNCTIONS"],
            env=environment, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        self._started.append(self)
        return self.process

    def start(self, timeout: float = 30) -> EngineProcess:
        """Spawn the process and wait until it serves; `client` is a boto3 Step Functions client of it."""
        self.spawn()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, "the engine printed no endpoint"
        line = self.process.stdout.readline()
        assert "http://" in line, line
        self.client = boto3.client(
            "stepfunctions", endpoint_url=line[line.index("http://") :].strip(), region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local",
        )
        return self

    def sibling(self) -> EngineProcess:
        """Another engine process on the same journal and ledger (not started)."""
        return EngineProcess(self.journal, self.ledger, self._started)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(10)

    def history(self, execution_arn: str) -> list[dict]:
        return self.client.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]

    def wait_for_end(self, execution_arn: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while (description := self.client.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not end"
            time.sleep(0.05)
        return description

    def runs(self) -> Counter[str]:
        """How often the ledger's functions ran for each step."""
        with sqlite3.connect(self.ledger) as connection:
            return Counter(step for (step,) in connection.execute("SELECT step FROM runs"))


@pytest.fixture
def engine_process(tmp_path: Path) -> Iterator[EngineProcess]:
    """An engine process (not started) on tmp_path's journal and ledger; every process it or its siblings started is killed after."""
    ledger = tmp_path / "ledger.sqlite"
    # The table exists before any engine starts: a reader must never see the file between its creation and the table's.
    with sqlite3.connect(ledger) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS runs (step TEXT NOT NULL, pid INTEGER NOT NULL)")
    started: list[EngineProcess] = []
    yield EngineProcess(tmp_path / "journal.sqlite", ledger, started)
    for engine in started:
        if engine.alive:
            engine.kill()
