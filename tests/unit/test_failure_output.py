"""A failing test's report does not print the passwords its frames were called with.

pytest's long traceback style lists each frame's arguments; a test that fails
inside `psycopg.connect` would print its `conninfo`, password included, into
the CI log. The suite's own settings (pyproject.toml) must keep it out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-never-in-a-report"


def test_a_failed_connection_reports_no_password(tmp_path: Path) -> None:
    failing = tmp_path / "test_connect_failure.py"
    # The password comes from outside the test's source, as the suite's do (from a secret or the stack's state).
    failing.write_text(textwrap.dedent("""
        import os
        import psycopg

        def connect(conninfo):
            return psycopg.connect(conninfo)

        def test_connect():
            password = os.environ["TEST_PASSWORD"]
            connect(f"host=127.0.0.1 port=1 dbname=x user=u password={password} connect_timeout=2")
    """))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
         "-p", "no:cacheprovider", str(failing)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        env={**os.environ, "TEST_PASSWORD": PASSWORD},
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert "OperationalError" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
