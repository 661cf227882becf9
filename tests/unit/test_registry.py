"""The pipeline registry against moto's DynamoDB: conditional claims, marks, listings, task tokens."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
from moto.dynamodb.models import DynamoDBBackend

from cdcflow.local import tables as local_tables
from lambdas import registry
from lambdas.common import idempotency
from lambdas.common.redaction import forget_secrets, remember_secret
from lambdas.errors import PipelineAlreadyOwned
from lambdas.registry import PipelineNotRegistered, PipelineStatus
from tests.unit.factories import pipeline_spec

pytestmark = pytest.mark.unit

REGISTRY = "cdcflow-registry"
EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:provision:orders-1"
OTHER_EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:provision:orders-2"


@pytest.fixture
def dynamodb(registry_table):
    return registry_table


def test_register_claims_a_free_id(dynamodb):
    entry = registry.register(pipeline_spec(), EXECUTION)
    assert (entry.pipeline_id, entry.owner, entry.status, entry.version) == ("orders", "team-x", PipelineStatus.PROVISIONING, 1)
    assert entry.spec_fingerprint == pipeline_spec().fingerprint()
    assert entry.spec["source"]["tables"] == ["public.orders"]
    assert registry.get("orders") == entry


def test_register_again_with_the_same_spec_and_execution_changes_nothing(dynamodb):
    first = registry.register(pipeline_spec(), EXECUTION)
    registry.set_step("orders", "CreateSlot")
    again = registry.register(pipeline_spec(), EXECUTION)
    assert again.version == 2 and again.current_step == "CreateSlot"
    assert again.created_at == first.created_at


def test_register_refuses_another_owner(dynamodb):
    registry.register(pipeline_spec(), EXECUTION)
    with pytest.raises(PipelineAlreadyOwned, match="pipeline 'orders' is owned by team-x"):
        registry.register(pipeline_spec(owner="team-y"), OTHER_EXECUTION)


def test_register_refuses_a_second_execution_while_provisioning(dynamodb):
    registry.register(pipeline_spec(), EXECUTION)
    with pytest.raises(PipelineAlreadyOwned, match=f"already being provisioned by execution {EXECUTION}"):
        registry.register(pipeline_spec(tables=("public.orders", "public.items")), OTHER_EXECUTION)


def test_register_refuses_an_active_pipeline(dynamodb):
    registry.register(pipeline_spec(), EXECUTION)
    registry.mark("orders", PipelineStatus.ACTIVE)
    with pytest.raises(PipelineAlreadyOwned, match="is ACTIVE"):
        registry.register(pipeline_spec(), OTHER_EXECUTION)


@pytest.mark.parametrize("ended", [PipelineStatus.FAILED, PipelineStatus.DELETED])
def test_the_owner_may_provision_a_failed_or_deleted_pipeline_again(dynamodb, ended):
    registry.register(pipeline_spec(), EXECUTION)
    registry.mark("orders", ended, current_step="CreateSlot", error="SlotBlockedByLongTransaction", cause="xid 42")
    registry.store_task_token("orders", "token-1")

    again = registry.register(pipeline_spec(tables=("public.orders", "public.items")), OTHER_EXECUTION)
    assert again.status is PipelineStatus.PROVISIONING
    assert again.execution_arn == OTHER_EXECUTION
    assert again.spec["source"]["tables"] == ["public.orders", "public.items"]
    assert again.current_step is None and again.last_error is None
    assert registry.pop_task_token("orders") is None


def test_another_owner_may_not_take_over_a_deleted_pipeline(dynamodb):
    registry.register(pipeline_spec(), EXECUTION)
    registry.mark("orders", PipelineStatus.DELETED)
    with pytest.raises(PipelineAlreadyOwned, match="owned by team-x"):
        registry.register(pipeline_spec(owner="team-y"), OTHER_EXECUTION)


@pytest.fixture
def atomic_item_writes(monkeypatch):
    """Make moto's item writes atomic, as DynamoDB's are.

    In-process moto checks a ConditionExpression and then writes, with no lock
    between, so two threads can both pass a check that real DynamoDB would let
    only one pass. The race under test (read, decide, conditional write) is in
    the registry's code and stays unserialized.
    """
    lock = threading.Lock()
    for name in ("put_item", "update_item", "delete_item"):
        original = getattr(DynamoDBBackend, name)

        def atomic(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, atomic)


@pytest.mark.parametrize("existing", [None, PipelineStatus.DELETED])
def test_of_two_racing_claims_exactly_one_wins(dynamodb, atomic_item_writes, existing):
    if existing is not None:
        registry.register(pipeline_spec(), "arn:aws:states:us-east-1:000000000000:execution:provision:old")
        registry.mark("orders", existing)
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def claim(execution_arn: str) -> None:
        barrier.wait()
        try:
            outcomes[execution_arn] = registry.register(pipeline_spec(), execution_arn)
        except PipelineAlreadyOwned as exc:
            outcomes[execution_arn] = exc

    threads = [threading.Thread(target=claim, args=(arn,)) for arn in (EXECUTION, OTHER_EXECUTION)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [arn for arn, outcome in outcomes.items() if not isinstance(outcome, Exception)]
    losers = [outcome for outcome in outcomes.values() if isinstance(outcome, PipelineAlreadyOwned)]
    assert len(winners) == 1 and len(losers) == 1
    assert registry.get("orders").execution_arn == winners[0]


def test_mark_records_status_step_and_a_redacted_error(dynamodb):
    forget_secrets()
    remember_secret("hunter2-very-secret")
    registry.register(pipeline_spec(), EXECUTION)
    entry = registry.mark(
        "orders", "FAILED", current_step="CreateReplicationUser",
        error="AuthenticationFailed", cause="password hunter2-very-secret rejected" + "x" * 10_000,
    )
    forget_secrets()
    assert entry.status is PipelineStatus.FAILED
    assert entry.current_step == "CreateReplicationUser"
    assert entry.last_error["error"] == "AuthenticationFailed"
    assert entry.last_error["cause"].startswith("password **** rejected")
    assert len(entry.last_error["cause"]) == registry.MAX_CAUSE_CHARS
    assert entry.version == 2


def test_mark_with_an_expected_execution_refuses_a_stale_one(dynamodb):
    registry.register(pipeline_spec(), EXECUTION)
    registry.mark("orders", PipelineStatus.FAILED)
    registry.register(pipeline_spec(), OTHER_EXECUTION)
    with pytest.raises(PipelineAlreadyOwned, match=f"held by execution {OTHER_EXECUTION}"):
        registry.mark("orders", PipelineStatus.FAILED, expected_execution_arn=EXECUTION)
    entry = registry.mark("orders", PipelineStatus.ACTIVE, expected_execution_arn=OTHER_EXECUTION)
    assert entry.status is PipelineStatus.ACTIVE


def test_writes_to_an_unknown_pipeline_say_so(dynamodb):
    with pytest.raises(PipelineNotRegistered, match="'ghost'"):
        registry.mark("ghost", PipelineStatus.ACTIVE)
    with pytest.raises(PipelineNotRegistered):
        registry.set_step("ghost", "CreateSlot")
    with pytest.raises(PipelineNotRegistered):
        registry.store_task_token("ghost", "token")
    assert registry.get("ghost") is None


def test_mark_rejects_an_unknown_status(dynamodb):
    registry.register(pipeline_spec(), EXECUTION)
    with pytest.raises(ValueError, match="'DONE'"):
        registry.mark("orders", "DONE")


def test_listing_by_status_and_owner_in_pages(dynamodb):
    for index in range(5):
        pipeline = f"pipe_{index}"
        registry.register(pipeline_spec(pipeline, owner="team-x" if index % 2 == 0 else "team-y"), f"{EXECUTION}-{index}")
        if index < 4:
            registry.mark(pipeline, PipelineStatus.ACTIVE)

    active = registry.list_entries(status="ACTIVE")
    assert [e.pipeline_id for e in active.entries] == ["pipe_0", "pipe_1", "pipe_2", "pipe_3"]
    assert active.next_key is None

    team_x = registry.list_entries(owner="team-x")
    assert sorted(e.pipeline_id for e in team_x.entries) == ["pipe_0", "pipe_2", "pipe_4"]

    seen, start_key = [], None
    while True:
        page = registry.list_entries(status=PipelineStatus.ACTIVE, limit=3, start_key=start_key)
        assert len(page.entries) <= 3
        seen.extend(e.pipeline_id for e in page.entries)
        start_key = page.next_key
        if start_key is None:
            break
    assert seen == ["pipe_0", "pipe_1", "pipe_2", "pipe_3"]

    everything, start_key = [], None
    while True:
        page = registry.list_entries(limit=2, start_key=start_key)
        everything.extend(e.pipeline_id for e in page.entries)
        if (start_key := page.next_key) is None:
            break
    assert sorted(everything) == [f"pipe_{i}" for i in range(5)]


def test_listing_rejects_a_foreign_start_key_and_a_bad_limit(dynamodb):
    with pytest.raises(ValueError, match="start_key"):
        registry.list_entries(start_key="not-a-key")
    with pytest.raises(ValueError, match="limit"):
        registry.list_entries(limit=0)


def test_task_tokens_are_popped_once(dynamodb):
    registry.register(pipeline_spec(), EXECUTION)
    registry.store_task_token("orders", "token-1")
    registry.store_task_token("orders", "token-2")
    assert registry.pop_task_token("orders") == "token-2"
    assert registry.pop_task_token("orders") is None
    assert "token" not in repr(registry.get("orders"))


def test_delete_is_idempotent(dynamodb):
    registry.register(pipeline_spec(), EXECUTION)
    assert registry.delete("orders") is True
    assert registry.delete("orders") is False
    assert registry.get("orders") is None


def test_entries_serialize_to_json_objects(dynamodb):
    entry = registry.register(pipeline_spec(), EXECUTION)
    document = entry.to_dict()
    assert document["status"] == "PROVISIONING"
    assert document["spec"] == pipeline_spec().to_dict()


def test_the_table_name_must_be_configured(dynamodb, monkeypatch):
    monkeypatch.delenv("REGISTRY_TABLE")
    with pytest.raises(RuntimeError, match="REGISTRY_TABLE"):
        registry.get("orders")


def test_ensure_tables_is_idempotent_and_enables_ttl(dynamodb):
    assert local_tables.ensure_tables(dynamodb, REGISTRY, "cdcflow-idempotency") == []
    assert local_tables.ensure_tables(dynamodb, "fresh-registry", "fresh-idempotency") == [
        "fresh-registry", "fresh-idempotency",
    ]
    ttl = dynamodb.describe_time_to_live(TableName="fresh-idempotency")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiration")
    indexes = dynamodb.describe_table(TableName="fresh-registry")["Table"]["GlobalSecondaryIndexes"]
    assert [(i["IndexName"], [k["AttributeName"] for k in i["KeySchema"]]) for i in indexes] == [
        ("by-status", ["status", "pipeline_id"]),
    ]


def test_local_key_schemas_match_the_cdk_stack():
    """infra/tables.py deploys the tables; lambdas cannot import CDK, so compare the constants."""
    source = Path(__file__).parents[2] / "infra" / "tables.py"
    constants = {
        node.targets[0].id: node.value.value
        for node in ast.parse(source.read_text()).body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.targets[0], ast.Name)
    }
    assert constants["REGISTRY_PARTITION_KEY"] == registry.PARTITION_KEY
    assert constants["REGISTRY_STATUS_INDEX"] == registry.STATUS_INDEX
    assert constants["REGISTRY_STATUS_ATTRIBUTE"] == registry.STATUS_ATTRIBUTE
    assert constants["IDEMPOTENCY_PARTITION_KEY"] == idempotency.IDEMPOTENCY_PARTITION_KEY
    assert constants["IDEMPOTENCY_TTL_ATTRIBUTE"] == idempotency.IDEMPOTENCY_TTL_ATTRIBUTE
