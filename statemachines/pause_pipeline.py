"""PausePipeline and ResumePipeline: stop a pipeline's connectors for a while, and start them again.

PausePipeline pauses both connectors through Connect's API, waits until they
and their tasks are PAUSED, then records PAUSED. A failure on the way resumes
what was paused and leaves the pipeline ACTIVE, with the error as its last.

ResumePipeline resumes both connectors, waits until they are RUNNING, writes
a fresh canary at the source and waits for it at the sink (the rows of
ProvisionPipeline), then records ACTIVE. A failure pauses the connectors
again and leaves the pipeline PAUSED, with the error as its last.

The API claims the pipeline for one lifecycle execution before starting
either (`lambdas.registry.claim_lifecycle`); the last step of each records
the outcome and releases it.
"""

from statemachines.model import (
    REGISTRY_WRITE, VPC_NETWORK, Compensate, Fail, Pass, Row, Schedule, Succeed, Task, WaitLoop, Workflow, step,
)
from statemachines.provision_pipeline import PROVISION
from statemachines.retry import AWS, CONNECT

# Connect pauses and resumes within a second or two: look at once, settling for up to 2 s, then back off from 1 s.
CONNECTORS_IN_STATE = Schedule(first=0, base=1, growth=2, cap=30, attempts=20, settle_seconds=2.0, poll_interval=0.1)

PAUSE_CONNECTORS_FUNCTION = step("PauseConnectors", "lifecycle.pause_handler",
                                 "Pause the pipeline's connectors (source first)", VPC_NETWORK)
RESUME_CONNECTORS_FUNCTION = step("ResumeConnectors", "lifecycle.resume_handler",
                                  "Resume the pipeline's connectors (sink first)", VPC_NETWORK)
CHECK_CONNECTORS_STATE = step("CheckConnectorsState", "lifecycle.check_handler",
                              "Report whether both connectors and their tasks are PAUSED or RUNNING", VPC_NETWORK)
MARK_LIFECYCLE = step("MarkLifecycle", "lifecycle.mark_handler",
                      "Record a pause's or resume's outcome and release the pipeline", REGISTRY_WRITE)

PAUSE_CONNECTORS = Task("PauseConnectors", PAUSE_CONNECTORS_FUNCTION, retry=CONNECT)
RESUME_CONNECTORS = Task("ResumeConnectors", RESUME_CONNECTORS_FUNCTION, retry=CONNECT)

PREPARE = Pass("Prepare", comment='Input: {"spec": <registered spec>}.', parameters={
    "spec.$": "$.spec", "results": {}, "errors": {}, "loops": {}, "compensations": {}, "compensation_errors": {},
})


def provision_row(name: str) -> Row:
    """A row of ProvisionPipeline's table, reused as it is declared there (the canary's write and wait-loop)."""
    for row in PROVISION.steps:
        if row.name == name:
            return row
    raise KeyError(f"ProvisionPipeline has no row {name!r}")


def _connectors_in(state: str) -> WaitLoop:
    return WaitLoop(f"Connectors{state.capitalize()}",
                    Task(f"CheckConnectors{state.capitalize()}", CHECK_CONNECTORS_STATE, retry=CONNECT,
                         parameters={"state": state}),
                    CONNECTORS_IN_STATE, gives_up="ConnectorsNotInState")


def _finish(name: str, status: str) -> Task:
    return Task(name, MARK_LIFECYCLE, retry=AWS, parameters={"status": status})


def _fail(name: str, status: str, comment: str) -> Task:
    return Task(name, MARK_LIFECYCLE, retry=AWS, comment=comment, result_path="$.failure",
                parameters={"status": status, "errors.$": "$.errors", "compensation_errors.$": "$.compensation_errors"})


PAUSE = Workflow(
    name="PausePipeline",
    file_stem="pause_pipeline",
    comment="PausePipeline: pauses an ACTIVE pipeline's connectors and records PAUSED; a failure resumes them and "
            'leaves it ACTIVE. Input: {"spec": <registered spec>}.',
    timeout_seconds=3600,
    steps=[
        PREPARE,
        Task("PauseConnectors", PAUSE_CONNECTORS_FUNCTION, retry=CONNECT, undo="ResumeConnectors"),
        _connectors_in("PAUSED"),
        _finish("MarkPaused", "PAUSED"),
        Succeed("PipelinePaused", output_path="$.results"),
    ],
    on_error=Compensate(
        compensations={"ResumeConnectors": RESUME_CONNECTORS},
        then=[
            _fail("MarkPauseFailed", "ACTIVE", "The connectors run again: the pipeline stays ACTIVE, with the error."),
            Fail("PauseFailed", "$.failure.Error", "$.failure.Cause"),
        ],
    ),
)

RESUME = Workflow(
    name="ResumePipeline",
    file_stem="resume_pipeline",
    comment="ResumePipeline: resumes a PAUSED pipeline's connectors, waits for a fresh canary at the sink and "
            'records ACTIVE; a failure pauses them again and leaves it PAUSED. Input: {"spec": <registered spec>}.',
    timeout_seconds=3600,
    steps=[
        PREPARE,
        Task("ResumeConnectors", RESUME_CONNECTORS_FUNCTION, retry=CONNECT, undo="PauseConnectors"),
        _connectors_in("RUNNING"),
        provision_row("WriteCanary"),
        provision_row("CanaryArrived"),
        _finish("MarkResumed", "ACTIVE"),
        Succeed("PipelineResumed", output_path="$.results"),
    ],
    on_error=Compensate(
        compensations={"PauseConnectors": PAUSE_CONNECTORS},
        then=[
            _fail("MarkResumeFailed", "PAUSED", "The connectors are paused again: the pipeline stays PAUSED, with "
                                                "the error."),
            Fail("ResumeFailed", "$.failure.Error", "$.failure.Cause"),
        ],
    ),
)
