"""What an update changes (merge, difference, refusals), the incremental snapshot's signal and progress, and the
spec history the registry keeps."""

import json
import re

import pytest

from lambdas import registry
from lambdas.source.signals import notification_payload, snapshot_progress, snapshot_signal_data
from lambdas.spec_update import diff, merge_patch, refusals
from tests.unit.factories import request_spec, resolved_spec

pytestmark = pytest.mark.unit

PROVISIONING = "arn:aws:states:us-east-1:123456789012:execution:ProvisionPipeline:orders-1"
UPDATE = "arn:aws:states:us-east-1:123456789012:execution:UpdatePipeline:orders-update-1"


def spec(**overrides):
    return resolved_spec(request_spec(**overrides))


def test_a_patch_merges_objects_key_by_key_replaces_lists_and_drops_nulls():
    document = {"source": {"connection": "shop-db", "tables": ["public.orders"]}, "debezium": {"snapshot_mode": "x"}}

    merged = merge_patch(document, {"source": {"tables": ["public.orders", "public.items"]}, "debezium": None})

    assert merged == {"source": {"connection": "shop-db", "tables": ["public.orders", "public.items"]}}
    assert document["source"]["tables"] == ["public.orders"]  # the original is untouched


def test_the_difference_names_tables_added_and_removed_in_spec_order_and_changed_settings():
    before = spec(tables=("public.orders", "public.customers"))
    after = spec(tables=("public.orders", "sales.lines", "sales.refunds"), debezium={"heartbeat_interval_ms": 5000})

    change = diff(before, after)

    assert change.tables_added == ("sales.lines", "sales.refunds")
    assert change.tables_removed == ("public.customers",)
    assert change.debezium_changed == ("heartbeat_interval_ms",)
    assert not change.sink_changed and not change.source_changed and not change.empty
    assert diff(before, before).empty


def test_the_answer_names_the_sink_tables_left_and_the_topics_deleted_or_kept():
    before, after = spec(tables=("public.orders", "public.customers")), spec(tables=("public.orders",))

    deleted = diff(before, after).to_dict(before)
    kept = diff(before, after).to_dict(before, keep_topics=True)

    assert deleted["sink_tables_left"] == ["public.public_customers"]
    assert deleted["topics_deleted"] == ["cdcflow.orders.public.customers"] and deleted["topics_kept"] == []
    assert kept["topics_deleted"] == [] and kept["topics_kept"] == ["cdcflow.orders.public.customers"]


def test_what_a_running_pipeline_cannot_change_is_refused_naming_each_field():
    before = spec()
    after = spec(source="payments-db", kafka={"topic_prefix": "other"})

    fields = [field for field, _ in refusals(before, after)]

    assert "source.connection" in fields and "source.database" in fields and "kafka.topic_prefix" in fields
    assert refusals(before, spec(tables=("public.orders", "public.items"))) == []


def test_the_snapshot_signal_lists_the_tables_and_a_condition_per_table():
    data = snapshot_signal_data(["public.orders", "public.items", "public.orders"],
                                {"public.items": "price > 10"})

    assert data == {"type": "incremental", "data-collections": ["public.orders", "public.items"],
                    "additional-conditions": [{"data-collection": r"public\.items", "filter": "price > 10"}]}
    with pytest.raises(ValueError, match="public.other"):
        snapshot_signal_data(["public.orders"], {"public.other": "true"})
    with pytest.raises(ValueError):
        snapshot_signal_data([])


def test_a_name_with_a_space_is_signalled_quoted_and_its_condition_matches_that_text():
    data = snapshot_signal_data(["Sales Dept.Orders", "public.Items"], {"Sales Dept.Orders": "id > 1"})

    assert data["data-collections"] == ['"Sales Dept".Orders', "public.Items"]
    (condition,) = data["additional-conditions"]
    assert re.fullmatch(condition["data-collection"], '"Sales Dept".Orders')
    assert not re.fullmatch(condition["data-collection"], "Sales Dept.Orders")


def test_progress_reads_a_scanned_table_named_quoted_or_not():
    for scanned in ('"Sales Dept"."Orders"', "Sales Dept.Orders", 'source."Sales Dept".Orders'):
        progress = snapshot_progress([note("TABLE_SCAN_COMPLETED", scanned_collection=scanned, status="SUCCEEDED",
                                           total_rows_scanned=3)], "sig-1", ["Sales Dept.Orders"])
        assert progress.scanned == {"Sales Dept.Orders": {"status": "SUCCEEDED", "rows": 3}}, scanned


def note(kind, signal="sig-1", **extra):
    return {"id": signal, "aggregate_type": "Incremental Snapshot", "type": kind, "additional_data": extra,
            "timestamp": "1"}


def test_progress_follows_only_the_notifications_of_its_own_signal():
    notes = [
        {"id": "x", "aggregate_type": "Initial Snapshot", "type": "COMPLETED", "additional_data": {}},
        note("STARTED"),
        note("TABLE_SCAN_COMPLETED", signal="other", scanned_collection="public.items", status="SUCCEEDED",
             total_rows_scanned="5"),
        note("TABLE_SCAN_COMPLETED", scanned_collection="public.orders", status="SUCCEEDED",
             total_rows_scanned="50000"),
    ]

    progress = snapshot_progress(notes, "sig-1", ["public.orders", "public.items"])

    assert progress.started and not progress.done and progress.rows_scanned == 50000
    notes.append(note("TABLE_SCAN_COMPLETED", scanned_collection="shop.public.items", status="EMPTY",
                      total_rows_scanned="0"))
    notes.append(note("COMPLETED"))
    progress = snapshot_progress(notes, "sig-1", ["public.orders", "public.items"])
    assert progress.done and progress.completed and progress.failed == {}
    assert sorted(progress.scanned) == ["public.items", "public.orders"]


def test_a_table_debezium_could_not_read_is_a_failure_with_its_status():
    notes = [note("TABLE_SCAN_COMPLETED", scanned_collection="public.orders", status="NO_PRIMARY_KEY",
                  total_rows_scanned="0")]

    assert snapshot_progress(notes, "sig-1", ["public.orders"]).failed == {"public.orders": "NO_PRIMARY_KEY"}
    assert snapshot_progress([note("ABORTED")], "sig-1", ["public.orders"]).aborted


def test_a_notification_value_is_read_with_or_without_the_schema_envelope():
    payload = note("STARTED")

    assert notification_payload(json.dumps({"schema": {"type": "struct"}, "payload": payload}).encode()) == payload
    assert notification_payload(json.dumps(payload)) == payload
    assert notification_payload(b"not json") is None and notification_payload(None) is None


def test_the_spec_history_keeps_the_newest_entries_that_fit():
    history = [{"spec": {"n": index, "pad": "x" * 100}, "at": str(index), "by": None} for index in range(10)]

    kept = registry.bounded_history(history, limit=600)

    assert kept == history[-len(kept):] and 1 <= len(kept) < 10


def test_an_update_that_succeeds_records_the_new_spec_and_the_previous_in_the_history(registry_table):
    before, after = spec(), spec(tables=("public.orders", "public.items"))
    registry.register(before, PROVISIONING)
    registry.mark("orders", "ACTIVE")
    registry.claim_lifecycle(registry.get("orders"), "update", UPDATE)

    entry = registry.finish_lifecycle("orders", UPDATE, "ACTIVE", new_spec=after, updated_by="arn:someone")
    again = registry.finish_lifecycle("orders", UPDATE, "ACTIVE", new_spec=after, updated_by="arn:someone")

    assert entry.spec_fingerprint == after.fingerprint() and entry.lifecycle_execution_arn is None
    assert entry.spec["source"]["tables"] == ["public.orders", "public.items"]
    assert [(item["spec"]["source"]["tables"], item["by"]) for item in entry.spec_history] == [
        (["public.orders"], "arn:someone")]
    assert again.version == entry.version  # a re-run changes nothing


def test_an_update_that_failed_keeps_the_previous_spec(registry_table):
    before = spec()
    registry.register(before, PROVISIONING)
    registry.mark("orders", "ACTIVE")
    registry.claim_lifecycle(registry.get("orders"), "update", UPDATE)

    entry = registry.finish_lifecycle("orders", UPDATE, "ACTIVE", error="SnapshotFailed", cause="no")

    assert entry.spec_fingerprint == before.fingerprint() and entry.spec_history == ()
    assert entry.status is registry.PipelineStatus.ACTIVE and entry.last_error["error"] == "SnapshotFailed"


def test_a_change_to_alarm_thresholds_is_a_change_recorded_with_the_spec():
    from lambdas.spec import parse_spec

    before = spec()
    document = before.to_dict()
    document["alarms"] = {**document.get("alarms", {}), "slot_lag_bytes": 1_000_000}
    after = parse_spec(document)

    change = diff(before, after)

    assert change.other_changed == ("alarms",) and not change.empty
    assert refusals(before, after) == []
    assert diff(before, before).other_changed == ()
