"""The local stack of real CDC services: PostgreSQL, Kafka (KRaft), Kafka Connect with
Debezium, DynamoDB Local and a moto server, all on 127.0.0.1 with no Docker.

    stack = cdcflow.local.up(progress=print)
    stack.endpoints.postgres.source_dsn()
    cdcflow.local.down(purge=False)
"""

from cdcflow.local.config import Endpoints, StackConfig, aws_environment, config_from_env
from cdcflow.local.errors import LocalStackError
from cdcflow.local.stack import LocalStack, ServiceStatus, down, status, up, use

__all__ = [
    "Endpoints",
    "LocalStack",
    "LocalStackError",
    "ServiceStatus",
    "StackConfig",
    "aws_environment",
    "config_from_env",
    "down",
    "status",
    "up",
    "use",
]
