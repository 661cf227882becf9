"""boto3 clients for the AWS APIs cdcflow calls, created once per process.

Creating a client costs tens of milliseconds, so every module asks this
factory instead of calling `boto3.client` itself. boto3 clients are
thread-safe once built; building them is not, hence the lock.

Endpoints follow boto3's own `AWS_ENDPOINT_URL` and
`AWS_ENDPOINT_URL_<SERVICE>` variables (DynamoDB Local, the moto server);
they and the region are part of the cache key, so changing them gives a new
client.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

# Retries stay short: the state machines' "aws-api" Retry policy backs off for longer.
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
)

_lock = threading.Lock()
_clients: dict[tuple[str, ...], Any] = {}


def _settings_key(service: str) -> tuple[str, ...]:
    endpoints = sorted(f"{name}={value}" for name, value in os.environ.items() if name.startswith("AWS_ENDPOINT_URL"))
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    return (service, region, *endpoints)


def client(service: str) -> Any:
    """A boto3 client for `service`, shared by every caller in this process."""
    key = _settings_key(service)
    with _lock:
        existing = _clients.get(key)
        if existing is None:
            existing = _clients[key] = boto3.session.Session().client(service, config=_CLIENT_CONFIG)
        return existing


def reset_clients() -> None:
    """Forget every cached client (tests that switch credentials or mocks call this)."""
    with _lock:
        _clients.clear()
