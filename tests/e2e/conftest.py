"""Every test in tests/e2e is marked `e2e`."""

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folder = config.rootpath / "tests" / "e2e"
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.e2e)
