"""Database credentials in AWS Secrets Manager.

Specs name the admin secrets (`{"username": ..., "password": ...}`); cdcflow
generates the replication user's secret (`cdcflow/<pipeline>/replication`)
and deletes it in compensation. Every password read or generated here is
remembered for redaction, so it is masked in any later log line or error.
Errors name the secret, never its contents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from secrets import token_urlsafe

from botocore.exceptions import ClientError

from lambdas import aws
from lambdas.common.redaction import remember_secret
from lambdas.errors import SecretNotFound, StepError
from lambdas.naming import PLATFORM_PREFIX

MANAGED_SECRET_PREFIX = f"{PLATFORM_PREFIX}/"
PIPELINE_TAG = "cdcflow:pipeline"
MANAGED_TAG = "cdcflow:managed"
# `token_urlsafe` draws from [A-Za-z0-9_-]: nothing needs quoting in a libpq
# conninfo, a JDBC URL or a connector config. 32 bytes give 43 characters.
_PASSWORD_BYTES = 32


class SecretMalformed(StepError):
    """A secret is not a JSON object with non-empty string `username` and `password`."""


class SecretAccessDenied(StepError):
    """cdcflow may not read a secret (IAM or KMS denied it)."""


@dataclass(frozen=True)
class Credentials:
    """A database login. The password is left out of `repr` and `str`."""

    username: str
    password: str = field(repr=False)


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _scheduled_for_deletion(secret_id: str, error: ClientError) -> bool:
    """Whether `error` came from a secret pending deletion (Secrets Manager's InvalidRequestException)."""
    if _code(error) != "InvalidRequestException":
        return False
    try:
        described = aws.client("secretsmanager").describe_secret(SecretId=secret_id)
    except ClientError:
        return False
    return "DeletedDate" in described


def _parse(secret_id: str, secret_string: str | None) -> Credentials:
    try:
        document = json.loads(secret_string or "")
    except ValueError:
        # `from None`: the decoder's exception holds the secret's text.
        raise SecretMalformed(f"secret {secret_id!r} is not a JSON object with 'username' and 'password'") from None
    if not isinstance(document, dict):
        raise SecretMalformed(f"secret {secret_id!r} is not a JSON object with 'username' and 'password'")
    for key in ("username", "password"):
        value = document.get(key)
        if not isinstance(value, str) or not value:
            problem = "has no" if key not in document else "has an empty or non-string"
            raise SecretMalformed(f"secret {secret_id!r} {problem} {key!r} key")
    remember_secret(document["password"])
    return Credentials(username=document["username"], password=document["password"])


def _get_value(secret_id: str) -> dict:
    try:
        return aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = _code(exc)
        if code == "ResourceNotFoundException":
            raise SecretNotFound(f"secret {secret_id!r} does not exist") from None
        if _scheduled_for_deletion(secret_id, exc):
            raise SecretNotFound(f"secret {secret_id!r} is scheduled for deletion") from None
        if code in ("AccessDeniedException", "DecryptionFailure"):
            raise SecretAccessDenied(f"cdcflow may not read secret {secret_id!r} ({code})") from None
        raise


def read_credentials(secret_id: str) -> Credentials:
    """The credentials in secret `secret_id` (name or ARN). Read-only.

    Raises `SecretNotFound`, `SecretAccessDenied` or `SecretMalformed`, each
    naming the secret id and, for a malformed secret, the missing key.
    """
    return _parse(secret_id, _get_value(secret_id).get("SecretString"))


def managed_tags(pipeline_id: str) -> dict[str, str]:
    """The tags of a secret cdcflow creates for `pipeline_id`."""
    return {PIPELINE_TAG: pipeline_id, MANAGED_TAG: "true"}


def ensure_generated_secret(name: str, username: str, tags: Mapping[str, str]) -> tuple[str, Credentials]:
    """The ARN and credentials of secret `name`, created with a random password if absent.

    Idempotent: when the secret exists, its ARN and password are returned
    unchanged, so re-running keeps the same secret and password; a secret
    scheduled for deletion is restored. Concurrent callers converge on one
    secret. Raises `SecretMalformed` if the existing secret holds another
    user's login. `tags` are added to `cdcflow:managed=true` on creation.
    """
    existing = _read_existing(name) or _create(name, username, tags)
    credentials = _parse(name, existing.get("SecretString"))
    if credentials.username != username:
        raise SecretMalformed(f"secret {name!r} holds the login of {credentials.username!r}, not {username!r}")
    return existing["ARN"], credentials


def _read_existing(name: str) -> dict | None:
    """The secret's current value, restoring it first if it is scheduled for deletion; None if absent."""
    client = aws.client("secretsmanager")
    try:
        return client.get_secret_value(SecretId=name)
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return None
        if not _scheduled_for_deletion(name, exc):
            raise
    client.restore_secret(SecretId=name)
    return client.get_secret_value(SecretId=name)


def _create(name: str, username: str, tags: Mapping[str, str]) -> dict:
    client = aws.client("secretsmanager")
    password = token_urlsafe(_PASSWORD_BYTES)
    remember_secret(password)
    secret_string = json.dumps({"username": username, "password": password})
    all_tags = {**tags, MANAGED_TAG: "true"}
    try:
        created = client.create_secret(
            Name=name,
            Description=f"Login of the PostgreSQL user {username}, created by cdcflow",
            SecretString=secret_string,
            Tags=[{"Key": key, "Value": value} for key, value in sorted(all_tags.items())],
        )
    except ClientError as exc:
        if _code(exc) != "ResourceExistsException":
            raise
        # Another run created it between our read and our create: use theirs.
        return client.get_secret_value(SecretId=name)
    return {"ARN": created["ARN"], "SecretString": secret_string}


def delete_secret(name: str) -> bool:
    """Delete secret `name` at once, without a recovery window. True if this call deleted a live secret.

    Idempotent: an absent secret is a no-op (False). A secret already
    scheduled for deletion is purged now, so the name is free for a
    re-provision, and also reports False.
    """
    client = aws.client("secretsmanager")
    try:
        scheduled = "DeletedDate" in client.describe_secret(SecretId=name)
        client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return False
        raise
    return not scheduled


def list_cdcflow_secrets() -> list[str]:
    """Names of every secret under `cdcflow/` (secrets scheduled for deletion excluded), sorted."""
    paginator = aws.client("secretsmanager").get_paginator("list_secrets")
    names: set[str] = set()
    for page in paginator.paginate(Filters=[{"Key": "name", "Values": [MANAGED_SECRET_PREFIX]}]):
        # The name filter matches prefixes of words too; keep true prefixes only.
        names.update(s["Name"] for s in page["SecretList"] if s["Name"].startswith(MANAGED_SECRET_PREFIX))
    return sorted(names)
