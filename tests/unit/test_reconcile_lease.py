"""The reconcile lease on moto's DynamoDB: one sweep at a time, expiry, release, and the handler respecting it."""

from __future__ import annotations

import threading

import pytest

import lambdas.reconcile as reconcile_package
from cdcflow import reconcile_runner
from cdcflow.errors import ServiceFailed
from lambdas.reconcile import lease
from lambdas.reconcile.lease import LEASE_ID, ReconcileAlreadyRunning, acquire, reconcile_lease, release

pytestmark = pytest.mark.unit

IDEMPOTENCY = "cdcflow-idempotency"


@pytest.fixture
def dynamodb(registry_table, monkeypatch):
    monkeypatch.setenv("IDEMPOTENCY_TABLE", IDEMPOTENCY)  # the table registry_table creates beside the registry
    return registry_table


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_second_sweep_is_refused_while_the_first_holds_the_lease(dynamodb):
    clock = Clock()
    first = acquire("sweep one", clock=clock)

    clock.now += 600
    with pytest.raises(ReconcileAlreadyRunning, match=r"sweep one, since 2027-01-15T08:00:00\+00:00"):
        acquire("sweep two", clock=clock)

    item = dynamodb.get_item(TableName=IDEMPOTENCY, Key={"id": {"S": LEASE_ID}})["Item"]
    assert item["token"]["S"] == first.token
    assert int(item["expiration"]["N"]) > first.expires_at  # the TTL never removes a live lease


def test_a_released_lease_can_be_taken_again(dynamodb):
    first = acquire("sweep one")
    assert release(first) is True
    second = acquire("sweep two")
    assert second.token != first.token


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_release_it(dynamodb):
    clock = Clock()
    crashed = acquire("killed by its timeout", clock=clock)
    clock.now += lease.DEFAULT_LEASE_SECONDS + 1

    taken_over = acquire("next sweep", clock=clock)

    assert release(crashed) is False
    with pytest.raises(ReconcileAlreadyRunning, match="next sweep"):
        acquire("third sweep", clock=clock)
    assert release(taken_over) is True


def test_the_lease_lasts_past_the_function_timeout():
    assert lease.DEFAULT_LEASE_SECONDS > reconcile_runner.RECONCILE_FUNCTION.timeout_seconds


def test_of_concurrent_sweeps_exactly_one_gets_the_lease(dynamodb):
    start = threading.Barrier(6)
    outcomes: list[str] = []

    def attempt(number: int) -> None:
        start.wait()
        try:
            acquire(f"sweep {number}")
            outcomes.append("acquired")
        except ReconcileAlreadyRunning:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["acquired"] + ["refused"] * 5


def test_the_lease_is_released_when_the_sweep_fails(dynamodb):
    with pytest.raises(RuntimeError), reconcile_lease("failing sweep"):
        raise RuntimeError("the registry could not be read")

    assert "Item" not in dynamodb.get_item(TableName=IDEMPOTENCY, Key={"id": {"S": LEASE_ID}})


def test_the_handler_does_not_sweep_while_another_sweep_holds_the_lease(dynamodb, monkeypatch):
    sweeps = []
    monkeypatch.setattr(reconcile_package, "reconcile", lambda **kwargs: sweeps.append(kwargs))
    held = acquire("cdcflow reconcile, pid 4242 on laptop")

    with pytest.raises(ReconcileAlreadyRunning, match="pid 4242"):
        reconcile_package.handler({}, None)

    assert sweeps == []
    assert release(held) is True


def test_a_local_sweep_is_refused_while_the_function_holds_the_lease(dynamodb, monkeypatch):
    from lambdas.reconcile import sweep

    sweeps = []
    monkeypatch.setattr(sweep, "reconcile", lambda **kwargs: sweeps.append(kwargs))
    acquire("the Reconcile function, request r-1")
    environment = {"IDEMPOTENCY_TABLE": IDEMPOTENCY, "REGISTRY_TABLE": "cdcflow-registry"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)  # the sweep sets them in the process; the test takes them back

    with pytest.raises(ServiceFailed, match="request r-1"):
        reconcile_runner.reconcile_locally(environment, repair=False)

    assert sweeps == []


def test_without_the_table_the_lease_names_the_missing_variable(dynamodb, monkeypatch):
    monkeypatch.delenv("IDEMPOTENCY_TABLE")
    with pytest.raises(ValueError, match="IDEMPOTENCY_TABLE is not set"):
        acquire("sweep")
