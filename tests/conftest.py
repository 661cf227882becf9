"""Session fixtures shared by every test folder."""

import os
from collections.abc import Iterator

import pytest

import cdcflow.local
from cdcflow.local.config import Endpoints


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Endpoints]:
    """The endpoints of the local stack, started (and waited for) if it is not running.

    At the end of the session it stops only the services this session started, and
    only when no other test session still uses them; a stack someone brought up by
    hand keeps running.

    While it runs, this process verifies PostgreSQL's certificate as the stack's
    functions do: `CDCFLOW_DATABASE_CA_FILE` names the stack's CA.
    """
    with cdcflow.local.use(progress=print) as stack:
        before = os.environ.get("CDCFLOW_DATABASE_CA_FILE")
        os.environ["CDCFLOW_DATABASE_CA_FILE"] = stack.endpoints.postgres.ca_file
        try:
            yield stack.endpoints
        finally:
            if before is None:
                os.environ.pop("CDCFLOW_DATABASE_CA_FILE", None)
            else:
                os.environ["CDCFLOW_DATABASE_CA_FILE"] = before
