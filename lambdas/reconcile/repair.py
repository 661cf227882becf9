"""Orphans across everything a sweep listed, and their deletion with the workflows' compensations.

`find_all_orphans` classifies what the sweep's inventories hold
(`lambdas.reconcile.orphans` decides each name); `still_orphaned` reads the
registry again so a pipeline registered during the sweep keeps what it has
created; `delete_orphans` removes the chosen ones in an order where nothing
still uses what goes. Each deletion is a compensation, so deleting what is
already gone succeeds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lambdas import registry, secrets
from lambdas.connect.client import ConnectClient
from lambdas.connect.deploy import delete_connector
from lambdas.reconcile.clusters import delete_orphan_topics
from lambdas.reconcile.orphans import (
    Orphan,
    ResourceKind,
    expected_location,
    expected_names,
    find_orphans,
    source_server,
)
from lambdas.reconcile.policy import LIVE_STATUSES
from lambdas.reconcile.source import SourceInventory, drop_orphans, open_source
from lambdas.reconcile.targets import TARGET_ERRORS, describe, grouped
from lambdas.registry import PipelineStatus, RegistryEntry
from lambdas.spec import PipelineSpec, parse_spec, spec_document

# Deleted in this order, so nothing still uses what is removed: connectors stop reading
# before their slot goes, the slot's walsender ends before its role is dropped.
REPAIR_ORDER: tuple[ResourceKind, ...] = (
    "connector", "slot", "publication", "heartbeat_table", "role", "topic", "secret",
)


def find_all_orphans(
    inventories: dict[str, SourceInventory],
    connector_statuses_by_cluster: dict[str, dict[str, Any]],
    topics: dict[str, list[str]],
    replication_secrets: list[str] | None,
    live_specs: list[PipelineSpec],
    statuses: dict[str, PipelineStatus],
) -> list[Orphan]:
    """The orphans among what the sweep listed; a dependency that did not answer has none."""
    orphans: list[Orphan] = []
    roles_by_server: dict[str, set[str]] = defaultdict(set)
    for location, inventory in inventories.items():
        orphans += find_orphans("slot", location, inventory.slots, live_specs, statuses)
        orphans += find_orphans("publication", location, inventory.publications, live_specs, statuses)
        orphans += find_orphans("heartbeat_table", location, inventory.heartbeat_tables, live_specs, statuses)
        roles_by_server[location.rsplit("/", 1)[0]].update(inventory.roles)
    for server, roles in roles_by_server.items():
        orphans += find_orphans("role", server, roles, live_specs, statuses)
    for url, connectors in connector_statuses_by_cluster.items():
        orphans += find_orphans("connector", url, connectors, live_specs, statuses)
    for bootstrap, names in topics.items():
        orphans += find_orphans("topic", bootstrap, names, live_specs, statuses)
    if replication_secrets is not None:
        orphans += find_orphans("secret", "secretsmanager", replication_secrets, live_specs, statuses)
    return orphans


def still_orphaned(orphans: list[Orphan]) -> list[Orphan]:
    """`orphans` less those whose pipeline was registered (or re-provisioned) while the sweep ran.

    Each pipeline id is read again with a strongly consistent read, so a
    provisioning that started after the registry was listed keeps what it
    has already created.
    """
    kept = []
    entries: dict[str, RegistryEntry | None] = {}
    for orphan in orphans:
        if orphan.pipeline_id not in entries:
            entries[orphan.pipeline_id] = registry.get(orphan.pipeline_id)
        entry = entries[orphan.pipeline_id]
        if entry is not None and entry.status in LIVE_STATUSES:
            spec = parse_spec(spec_document(entry.spec))
            owned = orphan.name in expected_names(orphan.kind, spec)
            if owned and expected_location(orphan.kind, spec) == orphan.location:
                continue
        kept.append(orphan)
    return kept


def delete_orphans(
    orphans: list[Orphan], chosen: list[Orphan], specs_by_location: dict[str, PipelineSpec]
) -> list[Orphan]:
    """Delete the `chosen` orphans with the matching compensations; returns `orphans`, those marked deleted or with their error.

    `specs_by_location` gives, for each source database, the spec whose admin
    secret opens it.
    """
    outcomes: dict[tuple[str, str, str], Orphan] = {}
    by_kind: dict[ResourceKind, list[Orphan]] = defaultdict(list)
    for orphan in chosen:
        by_kind[orphan.kind].append(orphan)
    for kind in REPAIR_ORDER:
        for location, orphans_there in grouped(by_kind.get(kind, []), lambda orphan: orphan.location):
            for orphan in _delete_group(kind, location, orphans_there, specs_by_location):
                outcomes[(orphan.kind, orphan.location, orphan.name)] = orphan
    return [outcomes.get((orphan.kind, orphan.location, orphan.name), orphan) for orphan in orphans]


def _delete_group(
    kind: ResourceKind, location: str, orphans: list[Orphan], specs_by_location: dict[str, PipelineSpec]
) -> list[Orphan]:
    """Delete orphans of one kind at one location; each comes back marked deleted or with its error."""
    names = [orphan.name for orphan in orphans]
    try:
        if kind == "connector":
            with ConnectClient(location) as client:
                errors = _each(names, lambda name: delete_connector(client, name))
        elif kind == "topic":
            errors = delete_orphan_topics(location, names)
        elif kind == "secret":
            errors = _each(names, secrets.delete_secret)
        else:
            # A role belongs to the server: it is dropped through any database of that server cdcflow knows.
            spec = _server_spec(location, specs_by_location) if kind == "role" else specs_by_location[location]
            with open_source(spec) as conn:
                errors = drop_orphans(conn, kind, {orphan.name: orphan.pipeline_id for orphan in orphans}, spec)
    except TARGET_ERRORS as exc:
        errors = dict.fromkeys(names, describe(exc))
    return [replace(orphan, deleted=errors.get(orphan.name) is None, error=errors.get(orphan.name)) for orphan in orphans]


def _each(names: list[str], delete: Callable[[str], object]) -> dict[str, str | None]:
    """Call `delete` for every name; returns each name's error (None when it succeeded)."""
    errors: dict[str, str | None] = {}
    for name in names:
        try:
            delete(name)
            errors[name] = None
        except TARGET_ERRORS as exc:
            errors[name] = describe(exc)
    return errors


def _server_spec(server: str, specs_by_location: dict[str, PipelineSpec]) -> PipelineSpec:
    return next(spec for location, spec in sorted(specs_by_location.items()) if source_server(spec) == server)
