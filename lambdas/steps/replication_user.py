"""CreateReplicationUser / DropReplicationUser: the login Debezium replicates with, and its secret.

The password is generated into a Secrets Manager secret first and read back
from it on every run, so a re-run keeps the same user and the same secret
and the role always matches what the secret holds.
"""

from typing import Any

from lambdas.common import step_handler
from lambdas.secrets import delete_secret, ensure_generated_secret, managed_tags
from lambdas.source.connection import connect_admin
from lambdas.source.replication_user import drop_replication_user, ensure_replication_user
from lambdas.spec import PipelineSpec


@step_handler
def create_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    names = spec.names
    secret_arn, credentials = ensure_generated_secret(
        names.replication_secret, names.replication_role, managed_tags(spec.pipeline_id, spec.owner)
    )
    with connect_admin(spec.source) as conn:
        user = ensure_replication_user(conn, spec, credentials.password, rds=spec.source.rds_instance_id is not None)
    return {**user, "secret_arn": secret_arn}


@step_handler
def drop_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    # Role first: while the secret exists a failed drop can be retried with everything still findable.
    with connect_admin(spec.source) as conn:
        role_dropped = drop_replication_user(conn, spec)
    return {"role_dropped": role_dropped, "secret_deleted": delete_secret(spec.names.replication_secret)}
