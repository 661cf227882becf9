"""ValidateStateMachineDefinition's diagnostics from the validator's problems, in AWS's shape.

Each problem becomes `{severity, code, message, location}`: the code is the
one the problem names (MISSING_TRANSITION_TARGET, MISSING_END_STATE, ...),
INVALID_JSON_DESCRIPTION for text that is not JSON, and
SCHEMA_VALIDATION_FAILED for the rest; the location is the JSON pointer of
the state (and field) the problem names, such as `/States/Check/Next`.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"(?:^|: )([A-Z][A-Z_]{3,}[A-Z]): ")
_STATE = re.compile(r"State '([^']+)'")
_FIELD = re.compile(r"(?:field '([A-Za-z]+)'|^State '[^']+': (?!State )([A-Z][A-Za-z]+) )")


def diagnostics(problems: list[str], severity: str = "ERROR", max_results: int | None = None) -> dict:
    """The ValidateStateMachineDefinition answer for `problems` (none: OK)."""
    found = [_diagnostic(problem) for problem in problems]
    if severity == "ERROR":
        found = [item for item in found if item["severity"] == "ERROR"]
    limit = max_results or 100
    answer = {"result": "FAIL" if any(item["severity"] == "ERROR" for item in found) else "OK", "diagnostics": found[:limit]}
    if len(found) > limit:
        answer["truncated"] = True
    return answer


def _diagnostic(problem: str) -> dict:
    code_match = _CODE.search(problem)
    if problem.startswith("the definition is not valid JSON"):
        code = "INVALID_JSON_DESCRIPTION"
    elif code_match:
        code = code_match.group(1)
    else:
        code = "SCHEMA_VALIDATION_FAILED"
    message = _CODE.sub(": ", problem, count=1).removeprefix(": ") if code_match else problem
    diagnostic = {"severity": "ERROR", "code": code, "message": message}
    states = _STATE.findall(problem)
    if states:
        location = "".join(f"/States/{name}" for name in states[:1])
        field = _FIELD.search(message)
        if field and (field.group(1) or field.group(2)):
            location += f"/{field.group(1) or field.group(2)}"
        diagnostic["location"] = location
    elif code == "MISSING_END_STATE" or "StartAt" in problem:
        diagnostic["location"] = "/StartAt" if "StartAt" in problem else "/States"
    return diagnostic
