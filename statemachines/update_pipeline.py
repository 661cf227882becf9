"""UpdatePipeline: takes an ACTIVE pipeline from its registered spec to a new one, or leaves it on the old.

Input: `{"spec": <new spec>, "previous_spec": <registered spec>, "keep_topics": bool, "requested_by": <principal>}`,
written by `PATCH`/`PUT /pipelines/{id}` once it has claimed the pipeline
(`lambdas.registry.claim_lifecycle`, action `update`).

Forward: check the added tables and grant SELECT on them (PrepareSource) ->
publication holds the new tables (AlignPublication: ADD and DROP TABLE) ->
the added tables' topics -> the source connector's config in place (include
list, Debezium settings), wait RUNNING -> the sink's config, wait RUNNING ->
an incremental snapshot of the added tables through the signal table
(StartSnapshot), wait until Debezium's notifications say each was read ->
wait until the sink holds as many rows as the source held then -> the removed
tables' topics (unless keep_topics) -> SELECT on the removed tables revoked -> record the new spec (the old one joins
the spec history) and release the pipeline, ACTIVE.

A failure anywhere runs the compensations, newest first: each applies the
previous spec again (sink and source configs, publication), deletes the
topics the update created and gives SELECT on exactly the previous tables, then the
pipeline is released ACTIVE on its previous spec with the error as its last.
"""

from statemachines.model import (
    REGISTRY_WRITE, SECRETS_READ, VPC_NETWORK, Compensate, Fail, Pass, Schedule, Succeed, Task, WaitLoop, Workflow,
    step,
)
from statemachines.pause_pipeline import MARK_LIFECYCLE
from statemachines.provision_pipeline import CHECK_CONNECTOR, CONNECTOR_RUNNING
from statemachines.retry import AWS, CONNECT, CONNECT_AND_SINK, CONNECT_WITH_SECRET, DATABASE, DATABASE_AND_SINK, KAFKA

# Debezium reads a snapshot chunk (1,024 rows by default) in well under a second: a 100,000-row table takes a
# minute or two. Look after 2 s, then back off from 2 s to 30 s: at most 60 checks, about 28 minutes of waits.
SNAPSHOT_COMPLETED = Schedule(first=2, base=2, growth=2, cap=30, attempts=60)
# After the snapshot the sink catches up within seconds; concurrent writes may keep it a little behind.
ROWS_COUNTED = Schedule(first=0, base=1, growth=2, cap=15, attempts=40)

PREVIOUS = {"previous_spec.$": "$.previous_spec"}
RESTORE = {**PREVIOUS, "restore": True}


def _update_step(key: str, handler: str, description: str, *permissions: str, timeout: int = 60):
    return step(key, f"update.{handler}", description, *permissions, timeout=timeout)


PREPARE_SOURCE = _update_step("PrepareSource", "prepare_source_handler",
                              "Check the tables to add, ensure the signal table, grant SELECT on the added tables",
                              SECRETS_READ, VPC_NETWORK)
RESTORE_GRANTS = _update_step("RestoreGrants", "restore_grants_handler",
                              "Give the replication role SELECT on exactly the previous spec's tables again",
                              SECRETS_READ, VPC_NETWORK)
REVOKE_REMOVED = _update_step("RevokeRemovedTables", "revoke_removed_handler",
                              "Take SELECT on the tables an update removed from the replication role",
                              SECRETS_READ, VPC_NETWORK)
ALIGN_PUBLICATION = _update_step("AlignPublication", "align_publication_handler",
                                 "Make the publication hold exactly the new (or previous) spec's tables",
                                 SECRETS_READ, VPC_NETWORK)
CREATE_ADDED_TOPICS = _update_step("CreateAddedTopics", "create_topics_handler",
                                   "Create the topics of the tables an update adds", SECRETS_READ, VPC_NETWORK)
DELETE_ADDED_TOPICS = _update_step("DeleteAddedTopics", "delete_added_topics_handler",
                                   "Delete the topics of the tables an update would have added", SECRETS_READ,
                                   VPC_NETWORK)
DELETE_REMOVED_TOPICS = _update_step("DeleteRemovedTopics", "delete_removed_topics_handler",
                                     "Delete the topics of the tables an update removed (unless keep_topics)",
                                     SECRETS_READ, VPC_NETWORK)
RECREATE_REMOVED_TOPICS = _update_step("RecreateRemovedTopics", "recreate_removed_topics_handler",
                                       "Create the previous spec's topics again", SECRETS_READ, VPC_NETWORK)
PUT_SOURCE = _update_step("UpdateSourceConnector", "put_source_handler",
                          "Put the source connector's config for the new (or previous) spec", SECRETS_READ,
                          VPC_NETWORK)
PUT_SINK = _update_step("UpdateSinkConnector", "put_sink_handler",
                        "Put the sink connector's config for the new (or previous) spec", SECRETS_READ, VPC_NETWORK)
START_SNAPSHOT = _update_step("StartSnapshot", "start_snapshot_handler",
                              "Signal Debezium to snapshot the added tables incrementally", SECRETS_READ, VPC_NETWORK)
CHECK_SNAPSHOT = _update_step("CheckSnapshot", "check_snapshot_handler",
                              "Read Debezium's notifications: has the incremental snapshot completed?", SECRETS_READ,
                              VPC_NETWORK)
CHECK_ROW_COUNTS = _update_step("CheckRowCounts", "check_counts_handler",
                                "Count the added tables' rows at the source and at the sink", SECRETS_READ,
                                VPC_NETWORK)
MARK_UPDATED = _update_step("MarkUpdated", "mark_updated_handler",
                            "Record the new spec (the previous joins the history) and release the pipeline",
                            REGISTRY_WRITE)

PREPARE = Pass("Prepare", comment="Input: {spec, previous_spec, keep_topics, requested_by}.", parameters={
    "spec.$": "$.spec", "previous_spec.$": "$.previous_spec", "keep_topics.$": "$.keep_topics",
    "requested_by.$": "$.requested_by",
    "results": {}, "errors": {}, "loops": {}, "compensations": {}, "compensation_errors": {},
})

UPDATE = Workflow(
    name="UpdatePipeline",
    file_stem="update_pipeline",
    comment="UpdatePipeline: moves an ACTIVE pipeline to a new spec (tables added with an incremental snapshot, "
            "tables removed, connector settings changed); a failure restores the previous spec and leaves it ACTIVE "
            'on it. Input: {"spec", "previous_spec", "keep_topics", "requested_by"}.',
    timeout_seconds=7200,
    steps=[
        PREPARE,
        Task("PrepareSource", PREPARE_SOURCE, retry=DATABASE, undo="RestoreGrants",
             parameters={**PREVIOUS, "keep_topics.$": "$.keep_topics"}),
        Task("AlignPublication", ALIGN_PUBLICATION, retry=DATABASE, undo="RestorePublication", parameters=PREVIOUS),
        Task("CreateAddedTopics", CREATE_ADDED_TOPICS, retry=KAFKA, undo="DeleteAddedTopics", parameters=PREVIOUS),
        Task("UpdateSourceConnector", PUT_SOURCE, retry=CONNECT_WITH_SECRET, undo="RestoreSourceConnector",
             parameters=PREVIOUS),
        WaitLoop("SourceConnectorRunning",
                 Task("CheckSourceConnectorRunning", CHECK_CONNECTOR, retry=CONNECT, parameters={"connector": "source"}),
                 CONNECTOR_RUNNING, gives_up="ConnectorNotReady"),
        Task("UpdateSinkConnector", PUT_SINK, retry=CONNECT_AND_SINK, undo="RestoreSinkConnector",
             parameters=PREVIOUS),
        WaitLoop("SinkConnectorRunning",
                 Task("CheckSinkConnectorRunning", CHECK_CONNECTOR, retry=CONNECT, parameters={"connector": "sink"}),
                 CONNECTOR_RUNNING, gives_up="ConnectorNotReady"),
        Task("StartSnapshot", START_SNAPSHOT, retry=DATABASE, parameters=PREVIOUS),
        WaitLoop("SnapshotCompleted",
                 Task("CheckSnapshotCompleted", CHECK_SNAPSHOT, retry=KAFKA,
                      parameters={"signal_id.$": "$.results.StartSnapshot.signal_id",
                                  "tables.$": "$.results.StartSnapshot.tables"}),
                 SNAPSHOT_COMPLETED, gives_up="SnapshotNotCompleted"),
        WaitLoop("RowsCounted",
                 Task("CheckRowsCounted", CHECK_ROW_COUNTS, retry=DATABASE_AND_SINK,
                      parameters={"tables.$": "$.results.StartSnapshot.tables",
                                  "expected.$": "$.loops.SnapshotCompleted.source_counts"}),
                 ROWS_COUNTED, gives_up="RowCountsDiffer"),
        Task("DeleteRemovedTopics", DELETE_REMOVED_TOPICS, retry=KAFKA, undo="RecreateRemovedTopics",
             parameters={**PREVIOUS, "keep_topics.$": "$.keep_topics"}),
        Task("RevokeRemovedTables", REVOKE_REMOVED, retry=DATABASE, undo="RestoreGrants", parameters=PREVIOUS),
        Task("MarkUpdated", MARK_UPDATED, retry=AWS, parameters={"requested_by.$": "$.requested_by"}),
        Succeed("PipelineUpdated", output_path="$.results"),
    ],
    on_error=Compensate(
        compensations={
            "RecreateRemovedTopics": Task("RecreateRemovedTopics", RECREATE_REMOVED_TOPICS, retry=KAFKA,
                                          parameters=RESTORE),
            "RestoreSinkConnector": Task("RestoreSinkConnector", PUT_SINK, retry=CONNECT_AND_SINK, parameters=RESTORE),
            "RestoreSourceConnector": Task("RestoreSourceConnector", PUT_SOURCE, retry=CONNECT_WITH_SECRET,
                                           parameters=RESTORE),
            "DeleteAddedTopics": Task("DeleteAddedTopics", DELETE_ADDED_TOPICS, retry=KAFKA, parameters=RESTORE),
            "RestorePublication": Task("RestorePublication", ALIGN_PUBLICATION, retry=DATABASE, parameters=RESTORE),
            "RestoreGrants": Task("RestoreGrants", RESTORE_GRANTS, retry=DATABASE, parameters=RESTORE),
        },
        then=[
            Task("MarkUpdateFailed", MARK_LIFECYCLE, retry=AWS, result_path="$.failure",
                 comment="The previous spec is in force again: the pipeline stays ACTIVE on it, with the error.",
                 parameters={"status": "ACTIVE", "errors.$": "$.errors",
                             "compensation_errors.$": "$.compensation_errors"}),
            Fail("UpdateFailed", "$.failure.Error", "$.failure.Cause"),
        ],
    ),
)
