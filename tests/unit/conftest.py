"""Every test in tests/unit is marked `unit`, and none of them reaches a real service."""

import os

import pytest

from lambdas import aws


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folder = config.rootpath / "tests" / "unit"
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def no_local_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests run against moto's in-process mocks: an endpoint left in the environment would bypass them."""
    for name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    aws.reset_clients()
