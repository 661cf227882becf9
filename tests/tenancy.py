"""Turning a test's resolved spec into what a team sends: connections registered as the platform would.

The e2e tests vary a pipeline's addresses (a wrong port, a missing sink
database, a hostile table name) by writing the resolved spec the workflows
run on. A team cannot send that: its spec names connections. `team_request`
registers, straight into the stack's connections table (the platform's
side), one connection per distinct source, cluster and sink the spec holds,
named after their content, and returns the team's spec naming them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3

from cdcflow.local.config import Endpoints
from cdcflow.local.workflows import CONNECTIONS_TABLE
from lambdas.connections import put_connection

EVERY_TEAM = ["*"]
CLUSTER_SECURITY = ("security_protocol", "sasl_mechanism", "secret", "ca_file")
# What a team's request says about its sink, beside the connection it names.
SINK_CHOICES = ("schema", "truncate", "key_columns")


def _name(kind: str, document: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:10]
    return f"t-{kind}-{digest}"


def _register(stack: Endpoints, document: dict[str, Any]) -> str:
    dynamodb = boto3.client("dynamodb", endpoint_url=stack.dynamodb.url, region_name=stack.aws.region,
                            aws_access_key_id="local", aws_secret_access_key="local")
    return put_connection(document, dynamodb, CONNECTIONS_TABLE).name


def team_request(stack: Endpoints, spec: dict[str, Any]) -> dict[str, Any]:
    """The team's spec for `spec` (resolved form), its connections registered for every team."""
    source = {key: value for key, value in spec["source"].items()
              if key in ("host", "port", "database", "admin_secret", "rds_instance_id", "sslmode", "ca_file",
                         "connect_ca_file")}
    if spec["source"].get("rds_instance_id"):
        source["reboot_policy"] = "approval" if spec["source"].get("approval_required", True) else "automatic"
    source_document = {"kind": "source", **source, "teams": EVERY_TEAM}
    kafka = spec["kafka"]
    cluster_document = {"kind": "cluster", "bootstrap_servers": kafka["bootstrap_servers"],
                        "connect_url": spec["connect"]["url"], "teams": EVERY_TEAM,
                        **{key: kafka[key] for key in CLUSTER_SECURITY if key in kafka}}
    sink = {key: value for key, value in spec["sink"].items() if key not in ("connection", *SINK_CHOICES)}
    sink_document = {"kind": "sink", **sink, "teams": EVERY_TEAM}
    names = {}
    for kind, document in (("source", source_document), ("cluster", cluster_document), ("sink", sink_document)):
        names[kind] = _register(stack, {"name": _name(kind, document), **document})

    request: dict[str, Any] = {
        "pipeline_id": spec["pipeline_id"],
        "owner": spec["owner"],
        "source": {"connection": names["source"], "tables": spec["source"]["tables"]},
        "cluster": names["cluster"],
        "sink": {"connection": names["sink"],
                 **{key: spec["sink"][key] for key in SINK_CHOICES if key in spec["sink"]}},
    }
    topics = {key: value for key, value in kafka.items()
              if key not in ("bootstrap_servers", "cluster", *CLUSTER_SECURITY)}
    if topics:
        request["kafka"] = topics
    if "debezium" in spec:
        request["debezium"] = spec["debezium"]
    return request
