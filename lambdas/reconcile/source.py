"""Reconciliation's view of a source database, through the source steps' own functions.

One connection per database per sweep: `take_inventory` lists every cdcflow
slot (with its lag), publication, heartbeat table and role
(`lambdas.source.inventory`); `realign_publication` compares one pipeline's
publication with its spec and, only when they differ, runs the CreatePublication
step's `ensure_publication`; `drop_orphans` removes orphans with the
compensations themselves (`drop_slot`, `drop_publication`,
`drop_heartbeat_table`, `drop_replication_user`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import psycopg

from lambdas.errors import StepError
from lambdas.reconcile.orphans import ResourceKind, expected_names
from lambdas.reconcile.policy import SlotObservation, publication_drift
from lambdas.source import inventory
from lambdas.source.connection import connect_admin
from lambdas.source.heartbeat import drop_heartbeat_table
from lambdas.source.publication import drop_publication, ensure_publication, expected_tables, publication_tables
from lambdas.source.replication_user import drop_replication_user
from lambdas.source.slot import drop_slot
from lambdas.spec import PipelineSpec


@dataclass(frozen=True)
class SourceInventory:
    """The cdcflow objects of one source database (roles: of its server)."""

    slots: dict[str, SlotObservation]
    publications: tuple[str, ...]
    heartbeat_tables: tuple[str, ...]  # `cdcflow.heartbeat_<id>`
    roles: tuple[str, ...]
    server_started_at: str | None = None  # the postmaster's start: slot statistics may reset only then


@contextmanager
def open_source(spec: PipelineSpec) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the spec's source database as its admin login (`connect_admin`); closed on exit.

    Raises the connection's named errors (`DatabaseUnavailable`,
    `AuthenticationFailed`, `SecretNotFound`, ...), which never carry the password.
    """
    with connect_admin(spec.source) as conn:
        yield conn


def take_inventory(conn: psycopg.Connection) -> SourceInventory:
    """Every cdcflow slot, publication and heartbeat table of the database, and the server's cdcflow roles. Read-only."""
    slots = {
        slot.name: SlotObservation(slot.name, exists=True, active=slot.active, lag_bytes=slot.lag_bytes,
                                   wal_status=slot.wal_status, confirmed_flush_lsn=slot.confirmed_flush_lsn,
                                   decoded_txns=slot.decoded_txns)
        for slot in inventory.cdcflow_slots(conn)
    }
    return SourceInventory(
        slots=slots,
        publications=tuple(inventory.cdcflow_publications(conn)),
        heartbeat_tables=tuple(inventory.heartbeat_tables(conn)),
        roles=tuple(inventory.cdcflow_roles(conn)),
        server_started_at=inventory.server_started_at(conn),
    )


def realign_publication(conn: psycopg.Connection, spec: PipelineSpec, exists: bool) -> tuple[list[str], list[str]]:
    """Bring the pipeline's publication back to the spec's tables; returns the tables (added, removed). Idempotent.

    Reads the publication's members first and changes nothing when they
    match, so a healthy pipeline costs one read; a missing publication is
    created. Raises the step's errors (`TablesNotFound`, `PublicationConflict`, ...)
    when the spec's tables cannot be published.
    """
    if exists:
        added, removed = publication_drift(expected_tables(spec), sorted(publication_tables(conn, spec.names.publication)))
        if not added and not removed:
            return [], []
    result = ensure_publication(conn, spec)
    return result["added"], result["removed"]


def drop_orphans(
    conn: psycopg.Connection, kind: ResourceKind, orphans: dict[str, str], location_spec: PipelineSpec
) -> dict[str, str | None]:
    """Drop orphaned objects of `kind` with the compensations; returns each name's error (None when dropped or absent).

    `orphans` maps each object's name to the pipeline id it was named for;
    the compensations derive every name from a pipeline id, so each runs on
    `location_spec` (any spec of this database) with that id. Idempotent: an
    object already gone counts as dropped. A slot's walsender is ended first.
    """
    compensations = {
        "slot": drop_slot,
        "publication": drop_publication,
        "heartbeat_table": drop_heartbeat_table,
        "role": drop_replication_user,
    }
    if kind not in compensations:
        raise ValueError(f"{kind} is not a source database object")
    errors: dict[str, str | None] = {}
    for name, pipeline_id in orphans.items():
        spec = replace(location_spec, pipeline_id=pipeline_id)
        if name not in expected_names(kind, spec):
            errors[name] = f"{name} is not the {kind} cdcflow names for pipeline {pipeline_id!r}; left alone"
            continue
        try:
            compensations[kind](conn, spec)
            errors[name] = None
        except (psycopg.Error, StepError) as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
    return errors
