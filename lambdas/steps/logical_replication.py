"""EnsureLogicalReplication / RebootSourceInstance / CheckSourceInstance, and RestoreParameterGroup.

A self-managed server can only be checked: raising `wal_level` needs its
operator. On RDS the step attaches a parameter group dedicated to the
instance, copied from its current one with `rds.logical_replication=1`
(`lambdas.rds`), and tells the workflow whether a reboot must follow; the
workflow then (after an approval, unless the source connection's reboot
policy is `automatic`) reboots and polls until the instance is available and
the server reports `wal_level=logical`. The instance id comes only from the
registered source connection. RestoreParameterGroup, the compensation,
attaches the original group again and deletes the copy, if this pipeline's
provisioning made it.
"""

from typing import Any

from lambdas import rds
from lambdas.common import step_handler
from lambdas.errors import StepError
from lambdas.source.connection import connect_admin
from lambdas.source.logical_replication import check_wal_level
from lambdas.spec import PipelineSpec
from lambdas.wait_loop import next_round, schedule_of


class SourceInstanceNotReady(StepError):
    """The RDS source did not come back available with logical replication in effect within the wait-loop's rounds."""


@step_handler
def ensure_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    instance_id = spec.source.rds_instance_id
    if instance_id is None:
        with connect_admin(spec.source) as conn:
            return {"wal_level": check_wal_level(conn), "reboot_required": False}
    state = rds.ensure_logical_replication_parameter(instance_id, spec.pipeline_id)
    return {
        "rds_instance_id": instance_id,
        "parameter_group": state.parameter_group,
        "original_parameter_group": state.original_parameter_group,
        "created_parameter_group": state.created,
        "changed": state.changed,
        "reboot_required": state.reboot_required,
    }


@step_handler
def reboot_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    instance_id = _rds_instance(spec)
    return {"rds_instance_id": instance_id, "reboot_started": rds.reboot_instance(instance_id)}


@step_handler
def restore_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    """A no-op for a self-managed source, and for an instance whose group cdcflow did not replace for this pipeline."""
    instance_id = spec.source.rds_instance_id
    if instance_id is None:
        return {"restored": False}
    result = rds.restore_original_parameter_group(instance_id, spec.pipeline_id)
    return {
        "rds_instance_id": instance_id,
        "restored": result.deleted is not None or result.reattached is not None,
        "reattached_parameter_group": result.reattached,
        "deleted_parameter_group": result.deleted,
        "left_alone": result.left_alone,
    }


@step_handler(idempotent=False)  # polled by a wait-loop: each call must look again
def check_instance_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    instance_id = _rds_instance(spec)
    state = rds.instance_state(instance_id)
    ready = state.ready
    if ready:
        # The parameter group says in-sync; the server itself must agree before a slot can exist.
        with connect_admin(spec.source) as conn:
            check_wal_level(conn)

    def gave_up(checks: int) -> SourceInstanceNotReady:
        return SourceInstanceNotReady(
            f"RDS instance {instance_id!r} is {state.status} with parameters {state.parameter_apply_status} "
            f"after {checks} checks"
        )

    return next_round(ready, int(event.get("attempt", 0)), schedule_of(event), gave_up, status=state.status)


def _rds_instance(spec: PipelineSpec) -> str:
    if spec.source.rds_instance_id is None:
        raise StepError("the spec names no source.rds_instance_id, so there is no instance to reboot or poll")
    return spec.source.rds_instance_id
