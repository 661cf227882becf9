"""The workflows, each declared once as a step table and rendered to the `*.asl.json` beside it.

| file | what it holds |
| --- | --- |
| `model.py` | the building blocks: `Function`, `Task`, `WaitLoop`, `Schedule`, `Choice`, `Pass`, `Fail`, `Succeed` |
| `provision_pipeline.py`, `teardown_pipeline.py`, `pause_pipeline.py`, `update_pipeline.py`, `resync_pipeline.py`, `rebuild_pipeline.py` | the step tables (pause_pipeline.py holds PausePipeline and ResumePipeline) |
| `shared.py` | the steps several workflows run: the compensations and the registry mark |
| `retry_policies.json`, `retry.py` | the named retry policies, each written once, and the sets rows use |
| `catalogue.py` | every Lambda function, collected from the tables (plus the API and reconcile functions) |
| `render.py` | table -> ASL; `cdcflow workflows render [--check]` |
| `*.asl.json` | the rendered definitions, committed: what CDK deploys and the local engine runs |
"""

from statemachines.pause_pipeline import PAUSE, RESUME
from statemachines.provision_pipeline import PROVISION
from statemachines.rebuild_pipeline import REBUILD
from statemachines.resync_pipeline import RESYNC
from statemachines.teardown_pipeline import TEARDOWN
from statemachines.update_pipeline import UPDATE

WORKFLOWS = (PROVISION, TEARDOWN, PAUSE, RESUME, UPDATE, RESYNC, REBUILD)
__all__ = ["PAUSE", "PROVISION", "REBUILD", "RESUME", "RESYNC", "TEARDOWN", "UPDATE", "WORKFLOWS"]
