"""Every test in tests/engine is marked `unit`."""

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folder = config.rootpath / "tests" / "engine"
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.unit)
