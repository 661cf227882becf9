"""References to secrets that Kafka Connect resolves itself, so connector configs carry no secret value.

A config value `${secretsmanager:<secret name>:<key>}` is resolved by the
worker's Secrets Manager ConfigProvider each time it starts the connector or
one of its tasks; Connect stores and shows the reference, never the value
(task configs included: Connect writes the references back into them).
The provider name is the one the workers declare in `config.providers`
(`cdcflow/local/connect.py` locally).
"""

from __future__ import annotations

from dataclasses import dataclass

from lambdas.errors import StepError

PROVIDER = "secretsmanager"
# Connect's reference syntax splits on `:` and ends at `}`: a name holding either cannot be referenced.
_UNREFERENCEABLE = (":", "{", "}", "$")


class SecretNotReferenceable(StepError):
    """A secret's id cannot be written as a ConfigProvider reference (an ARN, or a name with `:`, `{`, `}` or `$`)."""


def secret_reference(secret_name: str, key: str) -> str:
    """`${secretsmanager:<secret_name>:<key>}`. Raises `SecretNotReferenceable` naming the secret."""
    if not secret_name or any(character in secret_name for character in _UNREFERENCEABLE):
        raise SecretNotReferenceable(
            f"secret {secret_name!r} cannot be referenced from a connector config: name it by its name, "
            "without ':', '{', '}' or '$' (an ARN cannot be used)"
        )
    return f"${{{PROVIDER}:{secret_name}:{key}}}"


def is_reference(value: str) -> bool:
    """Whether `value` is a ConfigProvider reference of any provider."""
    return value.startswith("${") and value.endswith("}") and ":" in value


@dataclass(frozen=True)
class SecretLogin:
    """A connector's login whose password Connect reads from secret `secret_name` itself.

    `password` is the reference, not the value: a config built with it holds no secret.
    """

    username: str
    secret_name: str

    @property
    def password(self) -> str:
        return secret_reference(self.secret_name, "password")
