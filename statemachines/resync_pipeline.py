"""ResyncPipeline: delivers some of an ACTIVE pipeline's tables again, or only the rows a condition matches.

Input: `{"spec": <registered spec>, "tables": [...], "conditions": {table: condition}, "requested_by": <principal>}`,
written by `POST /pipelines/{id}/resync` once PostgreSQL has checked every
condition read-only (`lambdas.resync`) and the route has claimed the
pipeline (`lambdas.registry.claim_lifecycle`, action `resync`).

Forward: an `execute-snapshot` signal with Debezium's additional conditions
(StartResync) -> wait until Debezium's notifications say each table was
read, then count the rows the conditions match at the source -> report
matched and re-delivered rows per table and release the pipeline, ACTIVE.

A failure signals Debezium to stop the snapshot (StopResync) and releases
the pipeline ACTIVE with the error as its last: a resync changes no
configuration, so there is nothing else to restore.
"""

from statemachines.model import (
    REGISTRY_WRITE, SECRETS_READ, VPC_NETWORK, Compensate, Fail, Pass, Succeed, Task, WaitLoop, Workflow, step,
)
from statemachines.pause_pipeline import MARK_LIFECYCLE
from statemachines.retry import AWS, DATABASE, KAFKA
from statemachines.update_pipeline import CHECK_SNAPSHOT, SNAPSHOT_COMPLETED

START_RESYNC = step("StartResync", "resync.start_resync_handler",
                    "Signal Debezium to snapshot tables again, each limited by its condition", SECRETS_READ,
                    VPC_NETWORK)
STOP_RESYNC = step("StopResync", "resync.stop_resync_handler",
                   "Signal Debezium to stop a resync's incremental snapshot", SECRETS_READ, VPC_NETWORK)
MARK_RESYNCED = step("MarkResynced", "resync.mark_resynced_handler",
                     "Report a resync's matched and re-delivered rows and release the pipeline", REGISTRY_WRITE)

REQUEST = {"tables.$": "$.tables", "conditions.$": "$.conditions"}

RESYNC = Workflow(
    name="ResyncPipeline",
    file_stem="resync_pipeline",
    comment="ResyncPipeline: re-delivers an ACTIVE pipeline's tables, or the rows of each that a condition matches, "
            "through a Debezium incremental snapshot; a failure stops the snapshot and leaves it ACTIVE. "
            'Input: {"spec", "tables", "conditions", "requested_by"}.',
    timeout_seconds=7200,
    steps=[
        Pass("Prepare", comment="Input: {spec, tables, conditions, requested_by}.", parameters={
            "spec.$": "$.spec", "tables.$": "$.tables", "conditions.$": "$.conditions",
            "requested_by.$": "$.requested_by",
            "results": {}, "errors": {}, "loops": {}, "compensations": {}, "compensation_errors": {},
        }),
        Task("StartResync", START_RESYNC, retry=DATABASE, undo="StopResync", parameters=REQUEST),
        WaitLoop("SnapshotCompleted",
                 Task("CheckSnapshotCompleted", CHECK_SNAPSHOT, retry=KAFKA,
                      parameters={"signal_id.$": "$.results.StartResync.signal_id",
                                  "tables.$": "$.results.StartResync.tables",
                                  "conditions.$": "$.conditions"}),
                 SNAPSHOT_COMPLETED, gives_up="SnapshotNotCompleted"),
        Task("MarkResynced", MARK_RESYNCED, retry=AWS,
             parameters={"scanned.$": "$.loops.SnapshotCompleted.scanned",
                         "matched.$": "$.loops.SnapshotCompleted.source_counts"}),
        Succeed("PipelineResynced", output_path="$.results"),
    ],
    on_error=Compensate(
        compensations={"StopResync": Task("StopResync", STOP_RESYNC, retry=DATABASE, parameters=REQUEST)},
        then=[
            Task("MarkResyncFailed", MARK_LIFECYCLE, retry=AWS, result_path="$.failure",
                 comment="A resync changes no configuration: the pipeline stays ACTIVE, with the error.",
                 parameters={"status": "ACTIVE", "errors.$": "$.errors",
                             "compensation_errors.$": "$.compensation_errors"}),
            Fail("ResyncFailed", "$.failure.Error", "$.failure.Cause"),
        ],
    ),
)
