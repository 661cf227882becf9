"""The dependency layer build: cache key, cache hits without pip, and a clear failure."""

import subprocess

import pytest

from infra import packaging
from infra.packaging import LayerBuildFailed, ensure_layer_packages, requirements_hash

pytestmark = pytest.mark.unit


def test_hash_ignores_comments_blank_lines_and_order(tmp_path):
    first = tmp_path / "a.txt"
    second = tmp_path / "b.txt"
    first.write_text("# layer\nrequests==2.34.2\n\njsonschema==4.26.0\n")
    second.write_text("jsonschema==4.26.0\n# another comment\nrequests==2.34.2\n")
    assert requirements_hash(first) == requirements_hash(second)


def test_hash_changes_with_a_pin(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests==2.34.2\n")
    before = requirements_hash(requirements)
    requirements.write_text("requests==2.34.3\n")
    assert requirements_hash(requirements) != before


def test_pip_targets_the_lambda_runtime():
    assert packaging.PIP_PYTHON_VERSION == packaging.LAMBDA_RUNTIME.name.removeprefix("python")
    assert packaging.PIP_PYTHON_VERSION.startswith("3.")


def test_cached_layer_is_reused_without_pip(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests==2.34.2\n")
    cached = tmp_path / "cache" / requirements_hash(requirements) / "python"
    (cached / "requests").mkdir(parents=True)

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the layer is cached")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert ensure_layer_packages(requirements, tmp_path / "cache") == cached


def test_unreachable_index_fails_clearly_and_leaves_nothing(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests==2.34.2\n")
    cache = tmp_path / "cache"
    # Port 9 (discard) on localhost refuses connections at once.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(LayerBuildFailed, match="package index must be reachable"):
        ensure_layer_packages(requirements, cache)
    assert list(cache.iterdir()) == []  # no staging folder, no half-filled layer
