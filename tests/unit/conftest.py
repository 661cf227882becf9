"""Every test in tests/unit is marked `unit`."""

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folder = config.rootpath / "tests" / "unit"
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.unit)
