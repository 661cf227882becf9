"""ProvisionPipeline's source steps in workflow order, then the compensations: nothing leaks.

Also the inventory that reconciliation and these leak checks read.
"""

import time

from lambdas.source.canary import write_canary
from lambdas.source.heartbeat import drop_heartbeat_table, ensure_heartbeat_table
from lambdas.source.inventory import cdcflow_slots, list_cdcflow_resources
from lambdas.source.logical_replication import check_wal_level
from lambdas.source.publication import drop_publication, ensure_publication
from lambdas.source.replication_user import drop_replication_user, ensure_replication_user
from lambdas.source.slot import drop_slot, ensure_slot

PASSWORD = "Lifecycle-Pa55word"
# A bound, not a timing target: the local server runs with synchronous_commit=off.
WAL_WRITTEN_WITHIN_SECONDS = 30


def _slot(conn, name):
    return next(slot for slot in cdcflow_slots(conn) if slot.name == name)


def _provision(conn, spec):
    check_wal_level(conn)
    ensure_replication_user(conn, spec, PASSWORD, rds=False)
    ensure_heartbeat_table(conn, spec)
    ensure_publication(conn, spec)
    ensure_slot(conn, spec, wait_seconds=5)


def _compensate(conn, spec):
    return [
        drop_slot(conn, spec),
        drop_publication(conn, spec),
        drop_heartbeat_table(conn, spec),
        drop_replication_user(conn, spec),
    ]


def _owned_by(resources, spec):
    names = spec.names
    mine = {names.replication_role, names.replication_slot, names.publication, names.heartbeat_qualified}
    return {kind: [name for name in found if name in mine] for kind, found in resources.items()}


def test_provision_lists_every_resource_and_compensation_leaves_none(source_admin, pipeline_spec):
    names = pipeline_spec.names

    _provision(source_admin, pipeline_spec)
    _provision(source_admin, pipeline_spec)  # a retried execution: nothing new, nothing fails

    assert _owned_by(list_cdcflow_resources(source_admin), pipeline_spec) == {
        "roles": [names.replication_role],
        "slots": [names.replication_slot],
        "publications": [names.publication],
        "heartbeat_tables": [names.heartbeat_qualified],
    }
    write_canary(source_admin, pipeline_spec, "lifecycle")
    # The canary's WAL, unread; it counts once the WAL writer has written it out (within a moment).
    deadline = time.monotonic() + WAL_WRITTEN_WITHIN_SECONDS
    while not (slot := _slot(source_admin, names.replication_slot)).lag_bytes:
        assert time.monotonic() < deadline, f"slot lag still {slot.lag_bytes} after the canary was written"
        time.sleep(0.1)
    assert slot.active is False and slot.active_pid is None

    assert _compensate(source_admin, pipeline_spec) == [True, True, True, True]
    assert _compensate(source_admin, pipeline_spec) == [False, False, False, False]

    assert _owned_by(list_cdcflow_resources(source_admin), pipeline_spec) == {
        "roles": [], "slots": [], "publications": [], "heartbeat_tables": [],
    }


def test_compensations_of_a_pipeline_that_never_started_all_succeed(source_admin, pipeline_spec):
    assert _compensate(source_admin, pipeline_spec) == [False, False, False, False]


def test_roles_that_merely_share_the_prefix_are_not_listed(local_stack, source_admin):
    roles = list_cdcflow_resources(source_admin)["roles"]
    assert local_stack.postgres.admin_user.startswith("cdcflow_")
    assert local_stack.postgres.admin_user not in roles
