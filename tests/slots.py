"""Reconciliation sweeps and hand-dropped slots, for the e2e tests of BROKEN pipelines."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from cdcflow.local.config import Endpoints
from cdcflow.operate_cli import local_stack_environment
from cdcflow.reconcile_runner import reconcile_locally
from lambdas import aws

DROP_TIMEOUT_SECONDS = 60


def sweep(pipeline_id: str) -> dict[str, Any]:
    """One local sweep in this process, reported for `pipeline_id`; the stack's environment it sets is taken back."""
    environment = local_stack_environment()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        try:
            report = reconcile_locally(environment, repair=False)
        finally:
            aws.reset_clients()
    aws.reset_clients()
    [pipeline] = [p for p in report["pipelines"] if p["pipeline_id"] == pipeline_id]
    return pipeline


def drop_slot_by_hand(stack: Endpoints, slot: str) -> None:
    """What an operator does: end the slot's walsender and drop it (again, if the connector takes it back)."""
    deadline = time.monotonic() + DROP_TIMEOUT_SECONDS
    with psycopg.connect(stack.postgres.source_dsn(), autocommit=True) as conn:
        while True:
            conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                         "WHERE slot_name = %s AND active_pid IS NOT NULL", [slot])
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
                return
            except psycopg.errors.ObjectInUse:
                assert time.monotonic() < deadline, f"slot {slot} kept being taken back"
                time.sleep(0.1)
