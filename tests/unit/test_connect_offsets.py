"""Deleting a pipeline's connectors forgets their offsets first, so a re-provisioned pipeline snapshots again."""

import pytest

from lambdas.connect.deploy import forget_offsets
from lambdas.connect.errors import ConnectorConfigInvalid
from lambdas.errors import ConnectUnavailable


class StoppingConnect:
    """A connector that takes `stop_reads` reset attempts to reach STOPPED (Connect answers 400 until then)."""

    def __init__(self, exists: bool = True, stop_reads: int = 0) -> None:
        self.exists = exists
        self.stop_reads = stop_reads
        self.calls: list[str] = []

    def stop(self, name: str) -> bool:
        self.calls.append(f"stop {name}")
        return self.exists

    def reset_offsets(self, name: str) -> bool:
        self.calls.append(f"reset {name}")
        if self.stop_reads > 0:
            self.stop_reads -= 1
            raise ConnectorConfigInvalid(f"Connectors must be in the STOPPED state: {name}")
        return True


def test_offsets_are_reset_once_the_connector_has_stopped() -> None:
    connect = StoppingConnect(stop_reads=2)
    assert forget_offsets(connect, "c", sleep=lambda _: None) is True
    assert connect.calls == ["stop c", "reset c", "reset c", "reset c"]


def test_a_missing_connector_has_no_offsets_to_forget() -> None:
    connect = StoppingConnect(exists=False)
    assert forget_offsets(connect, "c", sleep=lambda _: None) is False
    assert connect.calls == ["stop c"]


def test_a_reset_that_is_never_accepted_is_transient_and_names_the_connector() -> None:
    connect = StoppingConnect(stop_reads=1_000)
    ticks = iter(range(100))
    with pytest.raises(ConnectUnavailable, match="offsets of connector c could not be reset within 5 s"):
        forget_offsets(connect, "c", timeout_seconds=5, sleep=lambda _: None, clock=lambda: next(ticks))


def test_offsets_behind_a_secret_that_is_gone_are_kept_and_the_connector_can_still_go() -> None:
    class SecretGone(StoppingConnect):
        def reset_offsets(self, name: str) -> bool:
            self.calls.append(f"reset {name}")
            raise ConnectorConfigInvalid(
                "Kafka Connect DELETE /connectors/c/offsets -> 500: secret cdcflow/orders/replication does not "
                "exist in Secrets Manager: the secret reference cannot be resolved"
            )

    connect = SecretGone()
    assert forget_offsets(connect, "c", sleep=lambda _: None) is False
    assert connect.calls == ["stop c", "reset c"]  # no retries: none can mend it
