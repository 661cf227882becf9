"""Database credentials in AWS Secrets Manager.

Specs name the admin secrets (`{"username": ..., "password": ...}`); cdcflow
generates the replication user's secret (`cdcflow/<pipeline>/replication`)
and deletes it in compensation, with a recovery window of
`RECOVERY_WINDOW_DAYS` so a mistaken teardown can be undone. Every password read or generated here is
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
# Tags and IAM (infra/functions.py) keep each secret where it belongs: function roles read an admin secret
# only when the platform tagged it `cdcflow:use=true` (it does so for the secrets its connections name), and
# create, read and delete replication secrets only with `cdcflow:managed=true`, set at creation.
PIPELINE_TAG = "cdcflow:pipeline"
TEAM_TAG = "cdcflow:team"
MANAGED_TAG = "cdcflow:managed"
USE_TAG = "cdcflow:use"
# `token_urlsafe` draws from [A-Za-z0-9_-]: nothing needs quoting in a libpq
# conninfo, a JDBC URL or a connector config. 32 bytes give 43 characters.
_PASSWORD_BYTES = 32
# Secrets Manager allows 7 to 30 days; the shortest keeps a re-provisioned name's old value around least long.
RECOVERY_WINDOW_DAYS = 7


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


def _check_registered(secret_id: str) -> None:
    """Refuse a secret that is neither tagged `cdcflow:use=true` by the platform nor a replication secret
    cdcflow made (`cdcflow/...`, tagged `cdcflow:managed=true`), as the functions' IAM policy does on AWS.

    The same rule in the code makes it hold where no IAM is evaluated (the local
    stack), and names the missing tag instead of a bare AccessDenied.
    """
    try:
        described = aws.client("secretsmanager").describe_secret(SecretId=secret_id)
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            raise SecretNotFound(f"secret {secret_id!r} does not exist") from None
        if _code(exc) == "AccessDeniedException":
            raise SecretAccessDenied(f"cdcflow may not read secret {secret_id!r} (AccessDeniedException)") from None
        raise
    if "DeletedDate" in described:
        raise SecretNotFound(f"secret {secret_id!r} is scheduled for deletion")
    tags = {tag["Key"]: tag["Value"] for tag in described.get("Tags", [])}
    replication = described.get("Name", "").startswith(MANAGED_SECRET_PREFIX) and tags.get(MANAGED_TAG) == "true"
    if tags.get(USE_TAG) != "true" and not replication:
        raise SecretAccessDenied(
            f"secret {secret_id!r} is not tagged {USE_TAG}=true: cdcflow reads only the secrets the platform "
            f"tagged for its registered connections and its own replication secrets ({MANAGED_TAG}=true)")


def read_credentials(secret_id: str) -> Credentials:
    """The credentials in the connection secret `secret_id` (name or ARN). Read-only.

    Raises `SecretNotFound`, `SecretAccessDenied` (also for a secret without
    the `cdcflow:use=true` tag) or `SecretMalformed`, each naming the secret id
    and, for a malformed secret, the missing key.
    """
    _check_registered(secret_id)
    return _parse(secret_id, _get_value(secret_id).get("SecretString"))


def managed_tags(pipeline_id: str, team: str) -> dict[str, str]:
    """The tags of a secret cdcflow creates for `pipeline_id`, owned by `team`: IAM requires all three at creation."""
    return {PIPELINE_TAG: pipeline_id, TEAM_TAG: team, MANAGED_TAG: "true"}


def ensure_generated_secret(name: str, username: str, tags: Mapping[str, str]) -> tuple[str, Credentials]:
    """The ARN and credentials of secret `name`, created with a random password if absent.

    Idempotent: when the secret exists, its ARN and password are returned
    unchanged, so re-running keeps the same secret and password. A secret
    scheduled for deletion (a torn-down pipeline provisioned again under the
    same id) is restored and given a new password: the old one belonged to a
    dropped role. Concurrent callers converge on one secret. Raises `SecretMalformed` if the existing secret holds another
    user's login. `tags` are added to `cdcflow:managed=true` on creation.
    """
    existing = _read_existing(name, username) or _create(name, username, tags)
    credentials = _parse(name, existing.get("SecretString"))
    if credentials.username != username:
        raise SecretMalformed(f"secret {name!r} holds the login of {credentials.username!r}, not {username!r}")
    return existing["ARN"], credentials


def _read_existing(name: str, username: str) -> dict | None:
    """The secret's current value; None if absent. One scheduled for deletion is restored with a new password."""
    client = aws.client("secretsmanager")
    try:
        return client.get_secret_value(SecretId=name)
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return None
        if not _scheduled_for_deletion(name, exc):
            raise
    client.restore_secret(SecretId=name)
    client.put_secret_value(SecretId=name, SecretString=_new_login(username))
    # Read back, not the value just put: of two concurrent restores, both return what was stored last.
    return client.get_secret_value(SecretId=name)


def _new_login(username: str) -> str:
    password = token_urlsafe(_PASSWORD_BYTES)
    remember_secret(password)
    return json.dumps({"username": username, "password": password})


def _create(name: str, username: str, tags: Mapping[str, str]) -> dict:
    client = aws.client("secretsmanager")
    secret_string = _new_login(username)
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
    """Schedule secret `name` for deletion after `RECOVERY_WINDOW_DAYS`. True if this call scheduled a live secret.

    Idempotent: an absent secret, or one already scheduled for deletion, is a
    no-op (False). Until the window ends the secret can be restored
    (`aws secretsmanager restore-secret`); provisioning the same pipeline id
    again restores it itself (`ensure_generated_secret`).
    """
    client = aws.client("secretsmanager")
    try:
        if "DeletedDate" in client.describe_secret(SecretId=name):
            return False
        client.delete_secret(SecretId=name, RecoveryWindowInDays=RECOVERY_WINDOW_DAYS)
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return False
        # Scheduled by a concurrent call between our describe and our delete.
        if _scheduled_for_deletion(name, exc):
            return False
        raise
    return True


def list_cdcflow_secrets() -> list[str]:
    """Names of every secret under `cdcflow/` (secrets scheduled for deletion excluded), sorted."""
    paginator = aws.client("secretsmanager").get_paginator("list_secrets")
    names: set[str] = set()
    for page in paginator.paginate(Filters=[{"Key": "name", "Values": [MANAGED_SECRET_PREFIX]}]):
        # The name filter matches prefixes of words too; keep true prefixes only.
        names.update(s["Name"] for s in page["SecretList"] if s["Name"].startswith(MANAGED_SECRET_PREFIX))
    return sorted(names)
