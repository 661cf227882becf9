"""localsfn: a Step Functions engine for one machine.

It runs Amazon States Language definitions (JSONPath query language)
whose tasks are Lambda functions, calling Python handlers in-process,
keeps every execution in a durable SQLite journal, resumes after a crash,
and serves the Step Functions API on localhost for boto3 and the AWS CLI.

    from localsfn import Engine, VirtualClock, serve
"""

from localsfn.clock import SystemClock, VirtualClock
from localsfn.engine import Engine
from localsfn.errors import DefinitionInvalid, ServiceError, StatesError
from localsfn.server import LocalServer, serve

__all__ = ["Engine", "VirtualClock", "SystemClock", "serve", "LocalServer", "DefinitionInvalid", "ServiceError", "StatesError"]
