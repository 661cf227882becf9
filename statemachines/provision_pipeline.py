"""ProvisionPipeline: turns a pipeline spec into a running CDC pipeline, or rolls everything back.

One row per state, in the order they run. A row's function says which
handler runs it (`lambdas/steps/<module>.py`), what it may touch and how
long it may take; `retry` names policies from `retry_policies.json`; `undo`
is the compensation it registers. A failure after registration runs every
registered compensation, newest first, then marks the pipeline FAILED.
"""

from statemachines import shared
from statemachines.model import (
    ALARMS_WRITE, RDS_DESCRIBE, RDS_PARAMETERS, RDS_REBOOT, REGISTRY_WRITE, SECRETS_READ, SECRETS_WRITE, VPC_NETWORK,
    Catch, Choice, Compensate, Fail, Pass, Reject, Row, Schedule, Succeed, Task, WaitLoop, Workflow, step,
)
from statemachines.retry import (
    AWS, CONNECT, CONNECT_AND_SINK, CONNECT_WITH_SECRET, DATABASE, DATABASE_AND_SINK, KAFKA, LAMBDA_ONLY,
)
from statemachines.shared import MARK_PIPELINE


# Connect usually reports a connector RUNNING within a second or two of the PUT, and the canary crosses to
# the sink in about as long: look at once, settling for up to 2 s (every 50 ms), then back off from 1 s.
# At most 451 s of waits and 40 s of settling before the loop gives up.
CONNECTOR_RUNNING = Schedule(first=0, base=1, growth=2, cap=30, attempts=20, settle_seconds=2.0, poll_interval=0.05)
CANARY_ARRIVED = Schedule(first=0, base=1, growth=2, cap=30, attempts=20, settle_seconds=2.0, poll_interval=0.05)
# An RDS reboot takes minutes: the first look comes after half a minute.
INSTANCE_AVAILABLE = Schedule(first=30, base=4, growth=2, cap=30, attempts=20)
# The backfill is followed every 30 s once under way; `attempts` counts checks without progress only (see
# lambdas/steps/backfill.py), so it gives up after about 19 minutes in which no row arrived, whatever its size.
# A backfill goes on while it moves: 10 checks without progress (about 13 min) end it, and 100 checks
# in all (about 4.7 h at the 180 s cap) keep the execution's history inside half of AWS's limit.
BACKFILL_PROGRESS = Schedule(first=2, base=2, growth=2, cap=180, attempts=10, most_checks=100)

CHECK_CONNECTOR = step("CheckConnector", "connectors.check_handler", "Report a connector's readiness", VPC_NETWORK)

# The forward steps, one row per state in the order they run.
STEPS: list[Row] = [
    Task("ValidateSpec",
         step("ValidateSpec", "validate_spec.handler", "Validate a pipeline spec against the JSON Schema"),
         retry=LAMBDA_ONLY,
         comment="Schema validation; the normalised spec (defaults filled) replaces the input spec.",
         result_selector={"spec.$": "$.spec"}, result_path="$.validated",
         catch=Reject("RejectSpec", "Nothing was created: the spec never passed validation.")),
    Pass("UseValidatedSpec", parameters={
        "spec.$": "$.validated.spec", "results": {}, "errors": {}, "loops": {}, "compensations": {},
        "compensation_errors": {},
    }),
    Task("RegisterPipeline",
         step("RegisterPipeline", "registry.register_handler", "Claim the pipeline id in the registry",
              REGISTRY_WRITE),
         retry=AWS,
         comment="Claims the pipeline id with a conditional write; a refusal must not compensate another "
                 "owner's resources.",
         catch=Reject("RejectRegistration", "The pipeline id belongs to another request; nothing was created.")),
    # After RegisterPipeline: the API's claim left the entry PROVISIONING, and only MarkFailed settles it.
    # Its failures skip the compensations (nothing exists yet, and they would wait on the very dependency
    # that failed) and go straight to MarkFailed.
    Task("Preflight",
         step("Preflight", "preflight.handler",
              "Check that the source, Kafka, Connect and the sink answer and accept their logins",
              SECRETS_READ, VPC_NETWORK, timeout=30),
         retry=LAMBDA_ONLY,
         comment="Each dependency the spec names is checked with a short timeout; a mistake fails in seconds "
                 "with an error naming the host, port, database, schema or URL. Creates the sink schema when "
                 "missing.",
         catch=Catch("MarkFailed", "$.errors.Preflight")),
    Task("EnsureLogicalReplication",
         step("EnsureLogicalReplication", "logical_replication.ensure_handler",
              "Check wal_level, or enable rds.logical_replication in the parameter group",
              SECRETS_READ, RDS_PARAMETERS, RDS_DESCRIBE, VPC_NETWORK),
         retry=DATABASE, undo="RestoreParameterGroup"),
    Choice("RebootRequired?", [
        {"And": [{"Variable": "$.results.EnsureLogicalReplication.reboot_required", "BooleanEquals": True},
                 {"Variable": "$.spec.source.approval_required", "BooleanEquals": True}],
         "Next": "RequestApproval"},
        {"Variable": "$.results.EnsureLogicalReplication.reboot_required", "BooleanEquals": True,
         "Next": "RebootSourceInstance"},
    ], default="CreateReplicationUser"),
    Task("RequestApproval",
         step("RequestApproval", "approval.request_handler", "Store the task token of a pending approval",
              REGISTRY_WRITE),
         retry=AWS,
         comment='Waits for a person\'s decision (SendTaskSuccess {"approved": true} or SendTaskFailure); '
                 "the timeout leads to the compensations.",
         parameters={"reason": "Enabling rds.logical_replication requires a reboot of the source instance"},
         approval_timeout_seconds=86400),
    Choice("Approved?", [
        {"Variable": "$.results.RequestApproval.approved", "BooleanEquals": True, "Next": "RebootSourceInstance"},
    ], default="ApprovalDenied"),
    Pass("ApprovalDenied",
         parameters={"Error": "ApprovalRejected", "Cause": "The reboot of the source instance was not approved"},
         result_path="$.errors.RequestApproval", next="DeleteConnectors"),
    Task("RebootSourceInstance",
         step("RebootSourceInstance", "logical_replication.reboot_handler",
              "Reboot the RDS source to apply parameters", RDS_REBOOT, RDS_DESCRIBE),
         retry=AWS),
    WaitLoop("SourceInstanceAvailable",
             Task("CheckSourceInstanceAvailable",
                  step("CheckSourceInstance", "logical_replication.check_instance_handler",
                       "Poll the RDS source until available and logical", SECRETS_READ, RDS_DESCRIBE, VPC_NETWORK),
                  retry=DATABASE),
             INSTANCE_AVAILABLE, gives_up="SourceInstanceNotReady"),
    Task("CreateReplicationUser",
         step("CreateReplicationUser", "replication_user.create_handler",
              "Create the replication role and its secret", SECRETS_READ, SECRETS_WRITE, VPC_NETWORK),
         retry=DATABASE, undo="DropReplicationUser"),
    Task("CreateHeartbeatTable",
         step("CreateHeartbeatTable", "heartbeat_table.create_handler", "Create the Debezium heartbeat table",
              SECRETS_READ, VPC_NETWORK),
         retry=DATABASE, undo="DropHeartbeatTable"),
    Task("CreatePublication",
         step("CreatePublication", "publication.create_handler", "Create or re-align the publication",
              SECRETS_READ, VPC_NETWORK),
         retry=DATABASE, undo="DropPublication"),
    Task("CreateSlot",
         step("CreateSlot", "slot.create_handler", "Create the logical replication slot",
              SECRETS_READ, VPC_NETWORK, timeout=300),
         retry=DATABASE, undo="DropSlot"),
    Task("CreateTopics",
         # SECRETS_READ: the SCRAM login of a SASL_SSL cluster (lambdas/kafka_security.py).
         step("CreateTopics", "topics.create_handler", "Create the pipeline's Kafka topics", SECRETS_READ,
              VPC_NETWORK),
         retry=KAFKA, undo="DeleteTopics"),
    Task("PutSourceConnector",
         step("PutSourceConnector", "connectors.put_source_handler", "Deploy the Debezium source connector",
              SECRETS_READ, VPC_NETWORK),
         retry=CONNECT_WITH_SECRET, undo="DeleteConnectors"),
    WaitLoop("SourceConnectorRunning",
             Task("CheckSourceConnectorRunning", CHECK_CONNECTOR, retry=CONNECT,
                  parameters={"connector": "source"}),
             CONNECTOR_RUNNING, gives_up="ConnectorNotReady"),
    Task("PutSinkConnector",
         step("PutSinkConnector", "connectors.put_sink_handler", "Deploy the sink connector",
              SECRETS_READ, VPC_NETWORK),
         retry=CONNECT_AND_SINK, undo="DeleteConnectors"),
    WaitLoop("SinkConnectorRunning",
             Task("CheckSinkConnectorRunning", CHECK_CONNECTOR, retry=CONNECT,
                  parameters={"connector": "sink"}),
             CONNECTOR_RUNNING, gives_up="ConnectorNotReady"),
    Task("WriteCanary",
         step("WriteCanary", "canary.write_handler", "Write a canary change in the source",
              SECRETS_READ, VPC_NETWORK),
         retry=DATABASE),
    WaitLoop("CanaryArrived",
             Task("CheckCanaryArrived",
                  step("CheckCanary", "canary.check_handler", "Look for the canary change at the sink",
                       SECRETS_READ, VPC_NETWORK),
                  retry=DATABASE_AND_SINK, parameters={"token.$": "$.results.WriteCanary.token"}),
             CANARY_ARRIVED, gives_up="CanaryNotArrived"),
    Task("PutAlarms",
         step("PutAlarms", "alarms.put_handler",
              "Create the pipeline's CloudWatch alarms on the metrics reconciliation emits", ALARMS_WRITE),
         retry=AWS, undo="DeleteAlarms",
         comment="One alarm per pipeline metric (dimension pipeline_id), thresholds from the spec's alarms or the "
                 "platform defaults, notifying the platform's alarm topic."),
    Choice("Backfill?", [
        {"Variable": "$.spec.debezium.snapshot_mode", "StringEquals": "backfill", "Next": "MarkActiveBackfilling"},
    ], default="MarkActive", comment="A backfilling pipeline is ACTIVE once it streams; its rows follow."),
    Task("MarkActive", MARK_PIPELINE, retry=AWS, parameters={"status": "ACTIVE"}),
    Succeed("PipelineActive", output_path="$.results"),
    # The backfill (lambdas/backfill.py): the pipeline streams, so no failure from here on rolls it back.
    Task("MarkActiveBackfilling",
         step("MarkActiveBackfilling", "backfill.mark_active_handler",
              "Record a pipeline ACTIVE and held by its provisioning while the backfill runs", REGISTRY_WRITE),
         retry=AWS),
    Task("StartBackfill",
         step("StartBackfill", "backfill.start_handler",
              "Estimate the tables' rows and signal Debezium's incremental snapshot of them", SECRETS_READ,
              REGISTRY_WRITE, VPC_NETWORK),
         retry=DATABASE, catch=Catch("MarkBackfillFailed", "$.errors.StartBackfill")),
    WaitLoop("BackfillCopied",
             Task("CheckBackfillCopied",
                  step("CheckBackfill", "backfill.check_handler",
                       "Record the backfill's progress; ready once the sink holds every row", SECRETS_READ,
                       REGISTRY_WRITE, VPC_NETWORK),
                  # A dependency that does not answer is a check without progress, not a retry: the loop waits.
                  retry=LAMBDA_ONLY,
                  parameters={"signal_id.$": "$.results.StartBackfill.signal_id",
                              "tables.$": "$.results.StartBackfill.tables",
                              "estimates.$": "$.results.StartBackfill.estimates",
                              "started_at.$": "$.results.StartBackfill.started_at",
                              "loop.$": "$.loops.BackfillCopied"},
                  catch=Catch("MarkBackfillFailed", "$.errors.BackfillCopied")),
             BACKFILL_PROGRESS, gives_up="BackfillStalled"),
    Task("MarkBackfilled",
         step("MarkBackfilled", "backfill.mark_done_handler",
              "Record the backfill done and release the pipeline", REGISTRY_WRITE),
         retry=AWS, parameters={"progress.$": "$.loops.BackfillCopied.progress",
                                "started_at.$": "$.results.StartBackfill.started_at"},
         catch=Catch("MarkBackfillFailed", "$.errors.MarkBackfilled")),
    Succeed("PipelineBackfilled", output_path="$.results"),
    Task("MarkBackfillFailed",
         step("MarkBackfillFailed", "backfill.mark_failed_handler",
              "Record a failed backfill and release the pipeline, ACTIVE", REGISTRY_WRITE),
         retry=AWS, parameters={"errors.$": "$.errors"}, result_path="$.failure",
         catch=Reject("BackfillNotRecorded", "The backfill failed and its failure could not be recorded.")),
    Fail("BackfillFailed", "$.failure.Error", "$.failure.Cause"),
]


def undoes(rows: list[Row]) -> dict[str, list[str]]:
    """Each compensation and the forward steps whose work it undoes."""
    undone: dict[str, list[str]] = {}
    for task in Workflow.tasks_of(rows):
        if task.undo:
            undone.setdefault(task.undo, []).append(task.name)
    return undone


PROVISION = Workflow(
    name="ProvisionPipeline",
    file_stem="provision_pipeline",
    comment="ProvisionPipeline: turns a pipeline spec into a running CDC pipeline, or rolls everything back. "
            'Input: {"spec": <pipeline spec>}.',
    timeout_seconds=172800,
    steps=STEPS,
    on_error=Compensate(
        compensations=shared.COMPENSATIONS,
        then=[
            Task("MarkFailed", MARK_PIPELINE, retry=AWS,
                 comment="Records FAILED with the original error and cause, and any compensation that could not "
                         "finish.",
                 # The results and what each compensation undoes tell a compensation that failed for a step
                 # that never ran (nothing to undo) from one that left something.
                 parameters={"status": "FAILED", "errors.$": "$.errors",
                             "compensation_errors.$": "$.compensation_errors", "results.$": "$.results",
                             "undoes": undoes(STEPS)},
                 result_path="$.failure"),
            Fail("ProvisionFailed", "$.failure.Error", "$.failure.Cause"),
        ],
    ),
)
