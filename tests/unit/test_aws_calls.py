"""The static analysis behind the IAM template tests finds the AWS calls a handler's code makes."""

import pytest
from aws_calls import reachable_definitions, reachable_operations

pytestmark = pytest.mark.unit


def test_reconcile_reaches_the_secret_calls_of_its_orphan_repair():
    # sweep -> secrets.list_cdcflow_secrets (a paginator); repair -> secrets.delete_secret;
    # open_source -> secrets.read_credentials.
    assert reachable_operations("lambdas.reconcile.handler", "secretsmanager") == {
        "ListSecrets", "DeleteSecret", "DescribeSecret", "GetSecretValue",
    }
    assert ("lambdas.reconcile.repair", "delete_orphans") in reachable_definitions("lambdas.reconcile.handler")


def test_a_function_passed_as_a_value_is_followed():
    # repair passes `secrets.delete_secret` to `_each` without calling it.
    assert ("lambdas.secrets", "delete_secret") in reachable_definitions("lambdas.reconcile.repair._delete_group")


def test_only_the_handler_reached_counts_not_its_module():
    # lambdas.steps.logical_replication holds three handlers; the reboot reaches no parameter-group call.
    assert reachable_operations("lambdas.steps.logical_replication.reboot_handler", "rds") == {
        "RebootDBInstance", "DescribeDBInstances",
    }
    assert "ModifyDBParameterGroup" in reachable_operations(
        "lambdas.steps.logical_replication.ensure_handler", "rds")


def test_routes_registered_by_decorators_are_reached_from_the_api_handler():
    reached = {module for module, _ in reachable_definitions("lambdas.api.handler")}
    assert "lambdas.api.pipelines" in reached
    assert "lambdas.api.approvals" in reached


def test_an_unknown_entry_is_refused():
    with pytest.raises(ValueError, match="lambdas.nowhere.handler"):
        reachable_definitions("lambdas.nowhere.handler")
