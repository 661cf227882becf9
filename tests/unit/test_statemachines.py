"""Static checks of the state machine definitions that CDK deploys and the local engine runs."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from asl_normal_form import normal_form
from statemachines import PROVISION, TEARDOWN, WORKFLOWS, render
from statemachines.catalogue import FUNCTIONS, by_key
from statemachines.model import WaitLoop
from statemachines.retry import longest_retry_seconds

pytestmark = pytest.mark.unit

STATEMACHINES = Path(__file__).resolve().parents[2] / "statemachines"
DEFINITIONS = sorted(STATEMACHINES.glob("*.asl.json"))
RETRY_POLICIES = json.loads((STATEMACHINES / "retry_policies.json").read_text())


def all_states(states: dict):
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from all_states(branch["States"])
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from all_states(processor["States"])


@pytest.fixture(params=DEFINITIONS, ids=lambda p: p.name)
def definition(request) -> dict:
    return json.loads(request.param.read_text())


def test_there_is_a_provision_definition():
    assert STATEMACHINES / "provision_pipeline.asl.json" in DEFINITIONS


def test_every_retry_is_a_named_policy(definition):
    named = list(RETRY_POLICIES.values())
    for name, state in all_states(definition["States"]):
        for retrier in state.get("Retry", []):
            assert retrier in named, f"{name} has a Retry that is not one of {sorted(RETRY_POLICIES)}"


def test_every_substitution_names_a_catalogued_function(definition):
    known = {function.substitution for function in FUNCTIONS}
    used = set(re.findall(r"\$\{(\w+)\}", json.dumps(definition)))
    assert used, "a definition without function substitutions runs nothing"
    assert used <= known, f"unknown substitutions: {sorted(used - known)}"


def test_every_task_retries_lambda_service_errors(definition):
    for name, state in all_states(definition["States"]):
        if state["Type"] == "Task":
            errors = {error for retrier in state.get("Retry", []) for error in retrier["ErrorEquals"]}
            assert "IdempotencyAlreadyInProgressError" in errors, name


def test_task_payloads_carry_execution_and_state_for_idempotency(definition):
    for name, state in all_states(definition["States"]):
        if state["Type"] != "Task":
            continue
        payload = state["Parameters"].get("Payload", state["Parameters"])
        assert payload.get("execution_id.$") == "$$.Execution.Id", name
        assert payload.get("state_name.$") == "$$.State.Name", name


BACKFILL_STEPS = {"StartBackfill", "CheckBackfillCopied", "MarkBackfilled"}


def test_provision_forward_steps_after_registration_route_failures_to_compensation():
    states = json.loads((STATEMACHINES / "provision_pipeline.asl.json").read_text())["States"]
    chain = [task.name for task in PROVISION.compensation_chain()]
    for name, state in states.items():
        # Preflight creates nothing: its failures go straight to MarkFailed (tests/unit/test_preflight.py).
        if state["Type"] != "Task" or name in {*chain, "MarkFailed", "ValidateSpec", "RegisterPipeline", "Preflight"}:
            continue
        targets = {catcher["Next"] for catcher in state["Catch"]}
        if name in BACKFILL_STEPS:
            # The pipeline streams already: a failed backfill is recorded, nothing is rolled back.
            assert targets == {"MarkBackfillFailed"}, f"{name} fails to {targets}"
            continue
        if name == "MarkBackfillFailed":
            assert targets == {"BackfillNotRecorded"} and states["BackfillNotRecorded"]["Type"] == "Fail"
            continue
        assert targets == {chain[0]}, f"{name} fails to {targets}"
        assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"]


def test_provision_compensations_run_in_reverse_order_and_never_stop_the_chain():
    states = json.loads((STATEMACHINES / "provision_pipeline.asl.json").read_text())["States"]
    chain = [task.name for task in PROVISION.compensation_chain()] + ["MarkFailed"]
    for current, following in zip(chain, chain[1:]):
        assert states[current]["Next"] == following
        assert {c["Next"] for c in states[current].get("Catch", [])} <= {following}
    assert states["MarkFailed"]["Next"] == "ProvisionFailed"
    assert states["ProvisionFailed"]["Type"] == "Fail"


def test_what_is_created_later_is_undone_earlier():
    undo_order = [task.name for task in PROVISION.compensation_chain()]
    creators = [task for task in PROVISION.tasks_of(PROVISION.steps) if task.undo]
    for earlier, later in zip(creators, creators[1:]):
        if earlier.undo != later.undo:
            assert undo_order.index(later.undo) < undo_order.index(earlier.undo), (earlier.name, later.name)
    # The slot goes only once the connector reading it is gone, and before the publication it decodes with.
    assert undo_order.index("DeleteConnectors") < undo_order.index("DropSlot") < undo_order.index("DropPublication")


# --- The definitions are rendered from the step tables --------------------------------------------------


def test_the_committed_definitions_are_what_the_tables_render():
    assert render.first_difference(WORKFLOWS) is None


def test_rendering_is_byte_identical_on_every_run():
    assert [render.text(workflow) for workflow in WORKFLOWS] == [render.text(workflow) for workflow in WORKFLOWS]


def test_a_hand_edited_definition_is_named_as_stale(tmp_path):
    render.write(WORKFLOWS, tmp_path)
    edited = tmp_path / "provision_pipeline.asl.json"
    edited.write_text(edited.read_text().replace('"MaxAttempts": 4', '"MaxAttempts": 9', 1))

    difference = render.first_difference(WORKFLOWS, tmp_path)

    assert difference is not None and difference.startswith("provision_pipeline.asl.json line ")
    assert '"MaxAttempts": 9' in difference


def test_render_check_exits_non_zero_naming_the_stale_file(tmp_path):
    from typer.testing import CliRunner

    from cdcflow.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["workflows", "render", "--dir", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["workflows", "render", "--check", "--dir", str(tmp_path)]).exit_code == 0
    (tmp_path / "teardown_pipeline.asl.json").write_text("{}\n")

    stale = runner.invoke(app, ["workflows", "render", "--check", "--dir", str(tmp_path)])

    assert stale.exit_code == 1
    assert "teardown_pipeline.asl.json line 1" in stale.output


def test_the_rendered_workflows_behave_as_the_definitions_before_the_tables():
    """Same states, transitions, retries, timeouts and paths as the hand-written files they replaced."""
    before = json.loads((Path(__file__).parent / "data" / "asl_before_step_table.json").read_text())
    tabled = {workflow.file_stem: workflow for workflow in WORKFLOWS}
    assert set(before) <= set(tabled)  # workflows declared since (ResyncPipeline) had no hand-written file
    for stem, definition in before.items():
        assert normal_form(render.definition(tabled[stem])) == definition, stem


def test_each_retry_policy_is_written_once():
    sources = [*STATEMACHINES.glob("*.py"), STATEMACHINES / "retry_policies.json"]
    written = sum(path.read_text().count('"MaxAttempts":') for path in sources)
    assert written == len(RETRY_POLICIES)


def test_a_task_times_out_when_its_function_does():
    for workflow in WORKFLOWS:
        states = render.definition(workflow)["States"]
        for task in workflow.tasks():
            expected = task.approval_timeout_seconds or task.function.timeout_seconds
            assert states[task.name]["TimeoutSeconds"] == expected, task.name
            assert by_key(task.function.key).timeout_seconds == task.function.timeout_seconds


def test_a_step_whose_attempt_died_is_retried_after_its_in_progress_record_expires():
    """The in-progress record of an attempt cut off by its timeout outlives it; the retry must outlast it."""
    longest_timeout = max(task.function.timeout_seconds for workflow in WORKFLOWS for task in workflow.tasks())
    assert longest_retry_seconds("in-progress") > longest_timeout
    for workflow in WORKFLOWS:
        for task in workflow.tasks():
            assert "in-progress" in task.retry, task.name


def test_every_wait_loop_gives_up_with_a_named_step_error():
    """The error a loop's table names is a StepError its check can raise, so Retry and Catch can match it."""
    import importlib

    from lambdas.connect import errors as connect_errors
    from lambdas.errors import StepError

    for workflow in WORKFLOWS:
        for row in workflow.steps:
            if isinstance(row, WaitLoop):
                step_module = importlib.import_module(row.check.function.handler.rpartition(".")[0])
                found = [getattr(module, row.gives_up) for module in (step_module, connect_errors)
                         if hasattr(module, row.gives_up)]
                assert found and issubclass(found[0], StepError), (row.name, row.gives_up)


def test_aws_language_service_finds_nothing_wrong_with_the_rendered_definitions():
    files = [str(path) for path in DEFINITIONS]
    reports = _asl_diagnostics(files)
    assert [report["file"] for report in reports] == files
    for report in reports:
        assert report["diagnostics"] == [], report["file"]


def test_aws_language_service_does_find_a_broken_definition(tmp_path):
    broken = tmp_path / "broken.asl.json"
    broken.write_text(json.dumps({"StartAt": "Missing", "States": {"A": {"Type": "Pass", "End": True}}}))
    [report] = _asl_diagnostics([str(broken)])
    assert any("StartAt" in diagnostic["message"] for diagnostic in report["diagnostics"])


def _asl_diagnostics(files: list[str]) -> list[dict]:
    script = Path(__file__).with_name("asl_language_service.cjs")
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(["node", str(script), *files], capture_output=True, text=True, cwd=repo, timeout=120,
                            check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_only_a_teardown_may_keep_an_opensearch_sinks_indices():
    teardown = render.definition(TEARDOWN)["States"]
    provision = render.definition(PROVISION)["States"]
    assert teardown["Prepare"]["Parameters"]["keep_index.$"] == "$.keep_index"
    assert teardown["DeleteConnectors"]["Parameters"]["keep_index.$"] == "$.keep_index"
    assert "keep_index.$" not in provision["DeleteConnectors"]["Parameters"]  # a rollback leaves nothing
