"""TeardownPipeline: removes every resource of a pipeline, in reverse order of creation.

The topics go last, and stay when the request says `keep_topics`. The first
step that fails marks the pipeline FAILED with its error; every step is
idempotent, so running the teardown again finishes the job.

A teardown that follows a stopped provisioning (a cancel: the input's
`stopped` names that execution and the step it was in) first waits until
that step's function has finished, so nothing it creates is made after its
compensation ran. A FAILED pipeline whose rollback recorded that nothing is
left is marked DELETED at once; the compensations of what the record says
was never created treat an unreachable dependency as nothing to undo.
"""

from dataclasses import replace

from statemachines import shared
from statemachines.model import Choice, Fail, Pass, StopAt, Succeed, Task, Workflow, step
from statemachines.provision_pipeline import PROVISION
from statemachines.retry import AWS, LAMBDA_ONLY
from statemachines.shared import MARK_PIPELINE

# The idempotency key prefix of each ProvisionPipeline task (lambdas.common.handler: "cdcflow.<handler>").
PROVISION_STEP_KEY_PREFIXES = {task.name: f"cdcflow.{task.function.handler}" for task in PROVISION.tasks()}
# What the rollback recorded as possibly left (None: unknown), for the compensations.
RESOURCES_LEFT = {"resources_left.$": "$.results.MarkDeleting.resources_left"}
# As long as the longest provisioning step may run: that step began before the stop, so its in-progress record
# expires sooner than this after the wait begins.
AWAIT_TIMEOUT_SECONDS = max(task.function.timeout_seconds for task in PROVISION.tasks())

PREPARE = {"spec.$": "$.spec", "keep_topics.$": "$.keep_topics", "keep_index.$": "$.keep_index",
           "results": {}, "errors": {}}


def _compensation(task: Task, **parameters: str) -> Task:
    return replace(task, parameters={**task.parameters, **RESOURCES_LEFT, **parameters})


TEARDOWN = Workflow(
    name="TeardownPipeline",
    file_stem="teardown_pipeline",
    comment="TeardownPipeline: removes every resource of a pipeline, in reverse order of creation; the topics stay "
            "when keep_topics is true.",
    timeout_seconds=86400,
    steps=[
        Choice("ProvisionStopped?", [{"Variable": "$.stopped", "IsPresent": True, "Next": "PrepareAfterStop"}],
               default="Prepare"),
        Pass("PrepareAfterStop",
             comment='Input: {"spec", "keep_topics", "keep_index", "stopped": {"execution_arn", "state_name"}}.',
             parameters={**PREPARE, "stopped.$": "$.stopped"}, next="MarkDeleting"),
        Pass("Prepare", comment='Input: {"spec": <registered spec>, "keep_topics": bool, "keep_index": bool}.',
             parameters=PREPARE),
        Task("MarkDeleting", MARK_PIPELINE, retry=AWS, parameters={"status": "DELETING"}),
        Choice("AwaitStoppedStep?", [{"Variable": "$.stopped", "IsPresent": True, "Next": "AwaitStoppedStep"}],
               default="NothingLeft?"),
        Task("AwaitStoppedStep",
             step("AwaitStoppedStep", "cancel.await_stopped_step_handler",
                  "Wait until the step a stopped provisioning was in has finished", timeout=AWAIT_TIMEOUT_SECONDS),
             retry=LAMBDA_ONLY,
             parameters={"stopped.$": "$.stopped", "step_key_prefixes": PROVISION_STEP_KEY_PREFIXES}),
        Choice("NothingLeft?",
               [{"Variable": "$.results.MarkDeleting.nothing_left", "BooleanEquals": True, "Next": "MarkDeleted"}],
               default="DeleteAlarms",
               comment="The rollback of a FAILED provisioning recorded that it left nothing."),
        # The alarms go first: nothing that follows should page anyone.
        _compensation(shared.DELETE_ALARMS),
        # An OpenSearch sink's indices go with the connectors unless the request keeps them.
        _compensation(shared.DELETE_CONNECTORS, **{"keep_index.$": "$.keep_index"}),
        _compensation(shared.DROP_SLOT),
        _compensation(shared.DROP_PUBLICATION),
        _compensation(shared.DROP_HEARTBEAT_TABLE),
        _compensation(shared.DROP_REPLICATION_USER),
        Choice("KeepTopics?", [{"Variable": "$.keep_topics", "BooleanEquals": True, "Next": "MarkDeleted"}],
               default="DeleteTopics"),
        _compensation(shared.DELETE_TOPICS),
        Task("MarkDeleted", MARK_PIPELINE, retry=AWS, parameters={"status": "DELETED"}),
        Succeed("PipelineDeleted", output_path="$.results"),
    ],
    on_error=StopAt(then=[
        Task("MarkTeardownFailed", MARK_PIPELINE, retry=AWS,
             comment="Every step is idempotent: running the teardown again finishes the job.",
             parameters={"status": "FAILED", "errors.$": "$.errors", "compensation_errors": {}},
             result_path="$.failure"),
        Fail("TeardownFailed", "$.failure.Error", "$.failure.Cause"),
    ]),
)
