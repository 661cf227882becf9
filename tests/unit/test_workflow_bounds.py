"""ProvisionPipeline's longest path stays far inside AWS's 25,000-event history limit."""

import json

from cdcflow.workflow_bounds import PROVISION_DEFINITION, bound, longest_path, provision_worst_case
from lambdas.connect.readiness import MAX_READINESS_ATTEMPTS

AWS_HISTORY_LIMIT = 25_000


def test_the_longest_path_runs_every_loop_to_its_limit_then_every_compensation() -> None:
    path = longest_path(json.loads(PROVISION_DEFINITION.read_text()))

    for check in ("CheckSourceInstanceAvailable", "CheckSourceConnectorRunning", "CheckSinkConnectorRunning",
                  "CheckCanaryArrived"):
        assert path.count(check) == MAX_READINESS_ATTEMPTS
    assert "RequestApproval" in path
    assert path[-8:] == ["DeleteConnectors", "DeleteTopics", "DropSlot", "DropPublication", "DropHeartbeatTable",
                         "DropReplicationUser", "MarkFailed", "ProvisionFailed"]


def test_the_worst_case_history_fits_the_aws_limit_with_room() -> None:
    worst = provision_worst_case()

    assert worst.events < AWS_HISTORY_LIMIT / 2
    assert worst.transitions < worst.events


def test_retries_are_counted_as_attempts() -> None:
    one_task = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn", "End": True, "Next": "S",
                                                  "Retry": [{"ErrorEquals": ["A"], "MaxAttempts": 2},
                                                            {"ErrorEquals": ["B"], "MaxAttempts": 3}]},
                                            "S": {"Type": "Succeed"}}}

    counted = bound(one_task)

    # 6 attempts of 3 events, entered and exited; Succeed entered and exited; execution started and ended.
    assert counted.events == 2 + 3 * 6 + 2 + 2
    assert counted.transitions == 6 + 1
