"""A state machine definition with what does not change its behaviour left out.

Left out: comments, key order, the order of retriers (their errors never
overlap), and the wait-loops' schedule values (how long a loop waits is the
table's to tune; its states, transitions and bounds are not).

`python tests/unit/asl_normal_form.py --update` rewrites
`data/asl_before_step_table.json` from the current step tables: do it in the
commit that changes a workflow's behaviour on purpose, so its diff shows the change.
"""

import json
from pathlib import Path
from typing import Any

POLICIES = json.loads((Path(__file__).resolve().parents[2] / "statemachines" / "retry_policies.json").read_text())
_POLICY_NAMES = {json.dumps(policy, sort_keys=True): name for name, policy in POLICIES.items()}


def normal_form(definition: dict[str, Any]) -> dict[str, Any]:
    return {
        "StartAt": definition["StartAt"],
        "TimeoutSeconds": definition.get("TimeoutSeconds"),
        "States": {name: _state(state) for name, state in definition["States"].items()},
    }


def _state(state: dict[str, Any]) -> dict[str, Any]:
    normal = {key: value for key, value in state.items() if key != "Comment"}
    if "Retry" in normal:
        normal["Retry"] = sorted(_POLICY_NAMES.get(json.dumps(r, sort_keys=True), json.dumps(r)) for r in normal["Retry"])
    parameters = normal.get("Parameters")
    if isinstance(parameters, dict):
        payload = parameters.get("Payload", parameters)
        payload.pop("schedule", None)
    if normal["Type"] == "Pass" and isinstance(normal.get("Result"), dict):
        normal["Result"].pop("wait_seconds", None)
    return normal


DATA_FILE = Path(__file__).resolve().parent / "data" / "asl_before_step_table.json"


def update() -> None:
    """Rewrite DATA_FILE with the normal form of every workflow as the step tables render it now."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from statemachines import WORKFLOWS, render

    forms = {workflow.file_stem: normal_form(render.definition(workflow)) for workflow in WORKFLOWS}
    DATA_FILE.write_text(json.dumps(forms, indent=1, sort_keys=True) + "\n")
    print(f"wrote {DATA_FILE}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/unit/asl_normal_form.py --update")
    update()
