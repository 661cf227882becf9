"""RebuildPipeline: brings a BROKEN pipeline back with a new slot and a full snapshot of its tables.

A pipeline is BROKEN when its replication slot was lost, invalidated or
re-created under its name (reconciliation decides, `lambdas.reconcile.policy`):
changes written meanwhile may never reach the sink, so streaming on would
leave a gap nobody sees. Input: `{"spec": <registered spec>}`, written by
`POST /pipelines/{id}/resync` with `{"rebuild": true}` (`cdcflow resync ID
--rebuild`) once it has claimed the pipeline (action `rebuild`).

Forward: the source connector and its committed offsets go
(RemoveSourceConnector), so nothing resumes from a position the new slot
never saw -> whatever slot has the name is dropped -> a new slot -> the
source connector again; with no offsets Debezium takes its initial snapshot
of every table, and the sink upserts each row -> wait RUNNING -> a fresh
canary, which Debezium streams only after the snapshot, reaches the sink ->
ACTIVE. The sink connector and the topics stay as they are.

A failure leaves the pipeline BROKEN with the error as its last: every step
may run again, so a second rebuild picks up where this one stopped.
"""

from dataclasses import replace

from statemachines import shared
from statemachines.model import SECRETS_READ, VPC_NETWORK, Compensate, Fail, Pass, Row, Succeed, Task, Workflow, step
from statemachines.pause_pipeline import MARK_LIFECYCLE, provision_row
from statemachines.retry import AWS, CONNECT

REMOVE_SOURCE_CONNECTOR = step("RemoveSourceConnector", "connectors.remove_source_handler",
                               "Delete the source connector and forget its committed offsets", SECRETS_READ,
                               VPC_NETWORK, timeout=300)



def _without_undo(row: Row) -> Row:
    """ProvisionPipeline's row, without the compensation it registers there: a rebuild undoes nothing."""
    return replace(row, undo=None) if isinstance(row, Task) else row


REBUILD = Workflow(
    name="RebuildPipeline",
    file_stem="rebuild_pipeline",
    comment="RebuildPipeline: gives a BROKEN pipeline a new slot and source connector, which snapshots every table "
            'again, and records ACTIVE once a fresh canary arrived; a failure leaves it BROKEN. Input: {"spec"}.',
    timeout_seconds=7200,
    steps=[
        Pass("Prepare", comment='Input: {"spec": <registered spec>}.', parameters={
            "spec.$": "$.spec", "results": {}, "errors": {}, "loops": {}, "compensations": {},
            "compensation_errors": {},
        }),
        Task("RemoveSourceConnector", REMOVE_SOURCE_CONNECTOR, retry=CONNECT),
        shared.DROP_SLOT,
        _without_undo(provision_row("CreateSlot")),
        # A full snapshot before ACTIVE, whatever the spec's snapshot mode: the rebuild has no backfill phase.
        replace(_without_undo(provision_row("PutSourceConnector")), parameters={"snapshot": "initial"}),
        *(provision_row(name) for name in ("SourceConnectorRunning", "WriteCanary", "CanaryArrived")),
        Task("MarkRebuilt", MARK_LIFECYCLE, retry=AWS, parameters={"status": "ACTIVE"}),
        Succeed("PipelineRebuilt", output_path="$.results"),
    ],
    on_error=Compensate(
        compensations={},
        then=[
            Task("MarkRebuildFailed", MARK_LIFECYCLE, retry=AWS, result_path="$.failure",
                 comment="Nothing to undo: the pipeline stays BROKEN, with the error; a rebuild may run again.",
                 parameters={"status": "BROKEN", "errors.$": "$.errors",
                             "compensation_errors.$": "$.compensation_errors"}),
            Fail("RebuildFailed", "$.failure.Error", "$.failure.Cause"),
        ],
    ),
)
