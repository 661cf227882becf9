"""Steps that several workflows run: recording the pipeline's status, and undoing what provisioning created.

The compensations serve ProvisionPipeline's rollback and TeardownPipeline.
Each is a no-op when there is nothing to undo, so a rollback can run all of
them whichever step failed, and a teardown can run again after it failed.
"""

from statemachines.model import (
    ALARMS_WRITE, RDS_DESCRIBE, RDS_RESTORE, REGISTRY_WRITE, SECRETS_DELETE, SECRETS_READ, VPC_NETWORK, Task, step,
)
from statemachines.retry import AWS, CONNECT_AND_SINK, DATABASE, KAFKA

MARK_PIPELINE = step("MarkPipeline", "registry.mark_handler", "Record status, current step and last error",
                     REGISTRY_WRITE)

DELETE_CONNECTORS = Task(
    "DeleteConnectors",
    # SECRETS_READ: an OpenSearch sink's login, to delete its indices.
    step("DeleteConnectors", "connectors.delete_handler", "Delete the pipeline's connectors", SECRETS_READ,
         VPC_NETWORK),
    retry=CONNECT_AND_SINK,
)
DELETE_ALARMS = Task(
    "DeleteAlarms",
    step("DeleteAlarms", "alarms.delete_handler", "Delete the pipeline's CloudWatch alarms", ALARMS_WRITE),
    retry=AWS,
)
DELETE_TOPICS = Task(
    "DeleteTopics",
    # SECRETS_READ: the SCRAM login of a SASL_SSL cluster (lambdas/kafka_security.py).
    step("DeleteTopics", "topics.delete_handler", "Delete the pipeline's Kafka topics", SECRETS_READ, VPC_NETWORK),
    retry=KAFKA,
)
DROP_SLOT = Task(
    "DropSlot",
    step("DropSlot", "slot.drop_handler", "Terminate the slot's walsender and drop the slot", SECRETS_READ, VPC_NETWORK),
    retry=DATABASE,
)
DROP_PUBLICATION = Task(
    "DropPublication",
    step("DropPublication", "publication.drop_handler", "Drop the publication", SECRETS_READ, VPC_NETWORK),
    retry=DATABASE,
)
DROP_HEARTBEAT_TABLE = Task(
    "DropHeartbeatTable",
    step("DropHeartbeatTable", "heartbeat_table.drop_handler", "Drop the heartbeat table", SECRETS_READ, VPC_NETWORK),
    retry=DATABASE,
)
DROP_REPLICATION_USER = Task(
    "DropReplicationUser",
    step("DropReplicationUser", "replication_user.drop_handler", "Drop the replication role and delete its secret",
         SECRETS_READ, SECRETS_DELETE, VPC_NETWORK),
    retry=DATABASE,
)
# Only the rollback runs it: a torn-down pipeline leaves the instance's dedicated group (other pipelines may need it).
RESTORE_PARAMETER_GROUP = Task(
    "RestoreParameterGroup",
    step("RestoreParameterGroup", "logical_replication.restore_handler",
         "Attach the RDS source's original parameter group again and delete cdcflow's copy", RDS_RESTORE,
         RDS_DESCRIBE),
    retry=AWS,
)

COMPENSATIONS = {task.name: task for task in (
    DELETE_ALARMS, DELETE_CONNECTORS, DELETE_TOPICS, DROP_SLOT, DROP_PUBLICATION, DROP_HEARTBEAT_TABLE,
    DROP_REPLICATION_USER, RESTORE_PARAMETER_GROUP,
)}
