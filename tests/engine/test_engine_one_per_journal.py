"""One engine per journal, and `python -m localsfn` on the engine's port rather than Kafka Connect's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cdcflow.local.config import Ports
from localsfn import Engine
from localsfn.__main__ import argument_parser
from localsfn.journal import JournalInUse

def test_a_second_engine_on_an_open_journal_refuses_naming_the_first_ones_pid(tmp_path: Path):
    journal = tmp_path / "journal.sqlite"
    with Engine(journal, {}) as first:
        first.create_state_machine("Kept", '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}')
        with pytest.raises(JournalInUse, match=rf"{journal} is in use by the engine with pid {os.getpid()}") as refused:
            Engine(journal, {})
        assert refused.value.pid == os.getpid()
        # The refused engine left the first one working.
        assert [machine["name"] for machine in first.list_state_machines()] == ["Kept"]
    with Engine(journal, {}) as after_close:
        assert [machine["name"] for machine in after_close.list_state_machines()] == ["Kept"]


def test_before_resume_runs_once_the_journal_is_the_engines_and_before_its_executions_go_on(tmp_path: Path):
    journal = tmp_path / "journal.sqlite"
    seen: list[str] = []

    def before_resume() -> None:
        seen.append("before_resume")

    def record(event, context):
        seen.append("task")
        return {}

    definition = ('{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "Next": "T"}, "T": {"Type": "Task", '
                  '"Resource": "arn:aws:lambda:us-east-1:000000000000:function:Record", "End": true}}}')
    functions = {"arn:aws:lambda:us-east-1:000000000000:function:Record": record}
    with Engine(journal, functions) as first:
        arn = first.start_execution(first.create_state_machine("Waits", definition), "{}", name="run-1")
        # Refused: another engine holds the journal, and nothing of the first one's is touched.
        with pytest.raises(JournalInUse):
            Engine(journal, functions, before_resume=before_resume)
        assert seen == []
    with Engine(journal, functions, before_resume=before_resume) as second:
        assert second.wait_for_execution(arn, timeout=30)["status"] == "SUCCEEDED"
    assert seen == ["before_resume", "task"]


@pytest.mark.slow
def test_a_second_engine_process_exits_naming_the_running_one_and_a_killed_one_frees_the_journal(engine_process):
    first = engine_process.start()
    second = first.sibling()
    _, errors = second.spawn(stderr=subprocess.PIPE).communicate(timeout=30)
    assert second.process.returncode != 0
    assert f"in use by the engine with pid {first.process.pid}" in errors
    assert first.alive, "the refused start stopped the running engine"
    first.kill()  # no cleanup runs: the kernel drops the lock
    third = first.sibling().start()
    assert third.stop() == 0


def test_python_m_localsfn_defaults_to_the_engine_port_not_kafka_connects():
    arguments = argument_parser().parse_args(["--db", "j.sqlite", "--functions", "m:a"])
    assert arguments.port == Ports().engine == 8600
    assert arguments.port != Ports().connect


def test_cdcflow_engine_serve_refuses_a_journal_another_engine_holds(tmp_path: Path):
    from typer.testing import CliRunner

    from cdcflow.engine_cli import app

    journal = tmp_path / "engine.sqlite"
    with Engine(journal, {}):
        result = CliRunner().invoke(app, ["--db", str(journal), "--port", "0"])
    assert result.exit_code == 1
    assert f"in use by the engine with pid {os.getpid()}" in result.output
