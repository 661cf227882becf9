"""Session fixtures shared by every test folder."""

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
    """
    with cdcflow.local.use(progress=print) as stack:
        yield stack.endpoints
