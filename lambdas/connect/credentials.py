"""The login a connector uses to reach a database."""

from dataclasses import dataclass, field

from lambdas.secrets import read_credentials


@dataclass(frozen=True)
class DatabaseLogin:
    """A database user and password, resolved from a secret by the step that needs it.

    The password is left out of `repr`, so the login can be logged or carried
    in an exception without leaking it. It never enters state machine data.
    """

    username: str
    password: str = field(repr=False)


def login_from_secret(secret_id: str) -> DatabaseLogin:
    """The login stored in secret `secret_id` (Secrets Manager), read at the moment it is needed."""
    credentials = read_credentials(secret_id)
    return DatabaseLogin(credentials.username, credentials.password)
