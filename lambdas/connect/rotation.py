"""Rotating a pipeline's replication password, and how the new value reaches its source connector.

The source connector's config holds `${secretsmanager:<replication secret>:password}`,
never the value, so a rotation changes no config: it stores a new password in
the secret, re-keys the PostgreSQL role to it, and restarts the connector and
its tasks, which makes the Connect worker resolve the reference again. Until
the restart Debezium keeps the replication session it opened with the old
password (PostgreSQL does not end sessions when a password changes), so
nothing stops in between.

`rotate_replication_password` is safe to call again after a failure: each call
converges the secret, the role and the running task on one new password.
"""

from __future__ import annotations

import json
import logging
from secrets import token_urlsafe
from typing import Any

from lambdas import aws
from lambdas.common.redaction import remember_secret
from lambdas.connect.client import ConnectClient
from lambdas.source.connection import connect_admin
from lambdas.source.replication_user import ensure_replication_user
from lambdas.spec import PipelineSpec

logger = logging.getLogger(__name__)

# As many random bytes as the generated replication passwords (lambdas.secrets): 43 URL-safe characters.
PASSWORD_BYTES = 32


def rotate_replication_password(spec: PipelineSpec, client: ConnectClient) -> dict[str, Any]:
    """Give the pipeline's replication user a new password; returns what was done, never the password.

    Order: the secret first (the value the worker will resolve), then the role,
    then a restart of the source connector with all its tasks. Raises the
    secret, database and Connect errors of the modules it calls.
    """
    names = spec.names
    password = token_urlsafe(PASSWORD_BYTES)
    remember_secret(password)
    secrets = aws.client("secretsmanager")
    version = secrets.put_secret_value(
        SecretId=names.replication_secret,
        SecretString=json.dumps({"username": names.replication_role, "password": password}),
    )["VersionId"]
    with connect_admin(spec.source) as conn:
        ensure_replication_user(conn, spec, password, rds=getattr(spec.source, "rds_instance_id", None) is not None)
    client.restart(names.source_connector, include_tasks=True, only_failed=False)
    logger.info("Rotated the password of %s and restarted %s", names.replication_role, names.source_connector)
    return {
        "role": names.replication_role,
        "secret": names.replication_secret,
        "secret_version": version,
        "restarted": names.source_connector,
    }
