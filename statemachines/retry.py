"""The named retry policies (`retry_policies.json`, each written once) and the sets of them that rows use."""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

POLICIES_FILE = Path(__file__).resolve().parent / "retry_policies.json"
POLICIES: dict[str, dict[str, Any]] = json.loads(POLICIES_FILE.read_text())

# By what a step reaches. Each set also retries Lambda's own errors and a concurrent duplicate of the call;
# steps that read a secret retry Secrets Manager's throttling too.
AWS = ("aws-api", "lambda", "in-progress")
DATABASE = ("database", *AWS)
KAFKA = ("kafka", "lambda", "in-progress")
CONNECT = ("connect", "lambda", "in-progress")
CONNECT_WITH_SECRET = ("connect", *AWS)
LAMBDA_ONLY = ("lambda", "in-progress")
# Steps that also reach an OpenSearch sink (its indices, the canary document).
CONNECT_AND_SINK = ("connect", "sink", *AWS)
DATABASE_AND_SINK = ("database", "sink", *AWS)


def retriers(names: Iterable[str]) -> list[dict[str, Any]]:
    """The Retry field for these policy names, in order; raises KeyError naming an unknown policy."""
    rendered = []
    for name in names:
        if name not in POLICIES:
            raise KeyError(f"no retry policy {name!r} in {POLICIES_FILE.name} (known: {', '.join(POLICIES)})")
        rendered.append(dict(POLICIES[name]))
    return rendered


def longest_retry_seconds(name: str) -> float:
    """How long a policy keeps retrying at most: the sum of its (capped, unjittered) intervals."""
    policy = POLICIES[name]
    interval, total = float(policy.get("IntervalSeconds", 1)), 0.0
    cap = policy.get("MaxDelaySeconds", float("inf"))
    for _ in range(policy.get("MaxAttempts", 3)):
        total += min(interval, cap)
        interval *= policy.get("BackoffRate", 2.0)
    return total
