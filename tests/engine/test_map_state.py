"""Distributed Map: Map Runs and their events, Label, ItemBatcher, tolerated failures.

Behaviour from https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html,
.../input-output-itembatcher.html and .../maprun-fail-threshold.html.
"""

from __future__ import annotations

import json
import threading

import pytest

from localsfn.errors import DefinitionInvalid
from localsfn.map_state import batches, exceeds_threshold
from localsfn.validation import validate

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
DISTRIBUTED = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}


def distributed_map(processor_states: dict, **fields) -> dict:
    processor = {"ProcessorConfig": DISTRIBUTED, "StartAt": next(iter(processor_states)), "States": processor_states}
    return {"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}}}


def test_a_map_run_with_its_events_and_label(run):
    finished = run(distributed_map({"Item": {"Type": "Pass", "End": True}}, Label="Fanout", ItemsPath="$.items"), {"items": [1, 2, 3]})
    assert (finished.status, finished.output) == ("SUCCEEDED", [1, 2, 3])
    types = finished.types
    assert types[:4] == ["ExecutionStarted", "MapStateEntered", "MapStateStarted", "MapRunStarted"]
    assert types[-4:] == ["MapRunSucceeded", "MapStateSucceeded", "MapStateExited", "ExecutionSucceeded"]
    assert not any(kind.startswith("MapIteration") for kind in types)
    run_arn = finished.events("MapRunStarted")[0]["mapRunStartedEventDetails"]["mapRunArn"]
    assert run_arn.startswith("arn:aws:states:us-east-1:000000000000:mapRun:") and "/Fanout:" in run_arn


def test_item_batcher_hands_each_child_a_batch_with_the_batch_input(run):
    definition = distributed_map(
        {"Count": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($.Items)", "tag.$": "$.BatchInput.tag"}, "End": True}},
        ItemBatcher={"MaxItemsPerBatch": 2, "BatchInput": {"tag": "t"}},
    )
    assert run(definition, [1, 2, 3, 4, 5]).output == [{"n": 2, "tag": "t"}, {"n": 2, "tag": "t"}, {"n": 1, "tag": "t"}]


def test_batches_respect_items_and_bytes():
    assert batches([1, 2, 3], 2, None, None) == [{"Items": [1, 2]}, {"Items": [3]}]
    assert batches(["aaaa", "bbbb", "c"], None, 13, {"k": 1}) == [{"BatchInput": {"k": 1}, "Items": ["aaaa", "bbbb"]}, {"BatchInput": {"k": 1}, "Items": ["c"]}]


@pytest.mark.parametrize(
    ("failed", "total", "count", "percentage", "exceeded"),
    [(1, 10, None, None, True), (0, 10, None, None, False), (2, 10, 2, None, False), (3, 10, 2, None, True), (2, 10, None, 20, False), (3, 10, None, 20, True)],
)
def test_the_tolerated_failure_threshold(failed, total, count, percentage, exceeded):
    assert exceeds_threshold(failed, total, count, percentage) is exceeded


def test_failures_within_the_tolerated_count_let_the_run_succeed(run, functions):
    def check(event, context):
        if event["n"] % 2:
            raise ValueError(f"odd {event['n']}")
        return event["n"]

    functions[ARN + "Check"] = check
    definition = distributed_map({"Check": {"Type": "Task", "Resource": ARN + "Check", "End": True}}, ToleratedFailureCountPath="$.tolerated", ItemsPath="$.items")
    finished = run(definition, {"tolerated": 2, "items": [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]})
    assert finished.status == "SUCCEEDED"
    assert [item if isinstance(item, int) else item["Error"] for item in finished.output] == [0, "ValueError", 2, "ValueError"]


def test_failures_beyond_the_threshold_fail_the_map_run(run, functions):
    def fail(event, context):
        raise ValueError("no")

    functions[ARN + "Fail"] = fail
    definition = distributed_map({"Fail": {"Type": "Task", "Resource": ARN + "Fail", "End": True}}, ToleratedFailurePercentage=50, MaxConcurrency=1)
    finished = run(definition, [1, 2, 3, 4])
    assert (finished.status, finished.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    assert "MapRunFailed" in finished.types and "MapStateFailed" in finished.types


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"Type": "Map", "Label": "x", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "End": True}, "Label is only valid in a DISTRIBUTED Map"),
        ({"Type": "Map", "ItemBatcher": {"MaxItemsPerBatch": 2}, "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "End": True}, "ItemBatcher is only valid in a DISTRIBUTED Map"),
        ({"Type": "Map", "Label": "a b", "ItemProcessor": {"ProcessorConfig": DISTRIBUTED, "StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "End": True}, "Label must not hold whitespace"),
        ({"Type": "Map", "ToleratedFailurePercentage": 120, "ItemProcessor": {"ProcessorConfig": DISTRIBUTED, "StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "End": True}, "from 0 to 100"),
        ({"Type": "Map", "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject"}, "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "End": True}, "ResultWriter is only valid in a DISTRIBUTED Map"),
        ({"Type": "Map", "ItemReader": {"Resource": "arn:aws:states:::s3:getObject"}, "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "End": True}, "ItemReader is only valid in a DISTRIBUTED Map"),
        ({"Type": "Map", "ResultWriter": {"WriterConfig": {"Transformation": "ALL"}}, "ItemProcessor": {"ProcessorConfig": DISTRIBUTED, "StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "End": True}, "Transformation must be one of NONE, COMPACT, FLATTEN"),
        ({"Type": "Map", "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "XML"}}, "ItemProcessor": {"ProcessorConfig": DISTRIBUTED, "StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "End": True}, "InputType must be one of"),
    ],
)
def test_map_fields_checked_at_creation(state, message):
    with pytest.raises(DefinitionInvalid) as refused:
        validate(json.dumps({"StartAt": "M", "States": {"M": state}}))
    assert message in str(refused.value)


def test_a_distributed_map_does_not_see_outer_variables():
    definition = {
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"outer": 1}, "Next": "Fan"},
            "Fan": {"Type": "Map", "ItemProcessor": {"ProcessorConfig": DISTRIBUTED, "StartAt": "I", "States": {"I": {"Type": "Pass", "Parameters": {"v.$": "$outer"}, "End": True}}}, "End": True},
        },
    }
    with pytest.raises(DefinitionInvalid) as refused:
        validate(json.dumps(definition))
    assert "the variable '$outer' is referenced but never assigned" in str(refused.value)


# ---------------------------------------------------------------------- ItemReader, against moto's S3


@pytest.fixture
def s3(monkeypatch):
    from moto import mock_aws

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="items")
        yield client


def reading(reader: dict, processor_state: dict | None = None) -> dict:
    states = {"Item": processor_state or {"Type": "Pass", "End": True}}
    return distributed_map(states, ItemReader=reader)


def test_item_reader_json_array_with_parameters_from_the_input(run, s3):
    s3.put_object(Bucket="items", Key="orders.json", Body=json.dumps([{"id": 1}, {"id": 2}, {"id": 3}]))
    reader = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON", "MaxItems": 2}, "Parameters": {"Bucket": "items", "Key.$": "$.key"}}
    finished = run(reading(reader), {"key": "orders.json"})
    assert (finished.status, finished.output) == ("SUCCEEDED", [{"id": 1}, {"id": 2}])
    assert finished.events("MapStateStarted")[0]["mapStateStartedEventDetails"]["length"] == 2


def test_item_reader_csv_with_the_first_row_or_given_headers(run, s3):
    s3.put_object(Bucket="items", Key="rows.csv", Body="table,rows\norders,10\nitems,20\n")
    first_row = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}, "Parameters": {"Bucket": "items", "Key": "rows.csv"}}
    assert run(reading(first_row)).output == [{"table": "orders", "rows": "10"}, {"table": "items", "rows": "20"}]
    given = {**first_row, "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["a", "b"]}}
    assert run(reading(given)).output[0] == {"a": "table", "b": "rows"}


def test_item_reader_json_lines(run, s3):
    s3.put_object(Bucket="items", Key="lines.jsonl", Body='{"n": 1}\n{"n": 2}\n')
    reader = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSONL"}, "Parameters": {"Bucket": "items", "Key": "lines.jsonl"}}
    assert run(reading(reader)).output == [{"n": 1}, {"n": 2}]


def test_item_reader_s3_inventory_manifest(run, s3):
    import gzip

    s3.put_object(Bucket="items", Key="inventory/data/part-1.csv.gz", Body=gzip.compress(b"items,a.txt,10\nitems,b.txt,20\n"))
    manifest = {"sourceBucket": "items", "destinationBucket": "arn:aws:s3:::items", "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size",
                "files": [{"key": "inventory/data/part-1.csv.gz", "size": 40, "MD5checksum": "x"}]}
    s3.put_object(Bucket="items", Key="inventory/manifest.json", Body=json.dumps(manifest))
    reader = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "MANIFEST"}, "Parameters": {"Bucket": "items", "Key": "inventory/manifest.json"}}
    assert run(reading(reader)).output == [{"Bucket": "items", "Key": "a.txt", "Size": "10"}, {"Bucket": "items", "Key": "b.txt", "Size": "20"}]


def test_item_reader_list_objects(run, s3):
    for key in ("logs/1.txt", "logs/2.txt", "other.txt"):
        s3.put_object(Bucket="items", Key=key, Body=b"x")
    reader = {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "items", "Prefix": "logs/"}}
    finished = run(reading(reader, {"Type": "Pass", "Parameters": {"key.$": "$.Key", "size.$": "$.Size"}, "End": True}))
    assert finished.output == [{"key": "logs/1.txt", "size": 1}, {"key": "logs/2.txt", "size": 1}]


def test_a_missing_object_fails_the_map_with_item_reader_failed(run, s3):
    reader = {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "items", "Key": "nothing.json"}}
    finished = run(reading(reader))
    assert (finished.status, finished.error) == ("FAILED", "States.ItemReaderFailed")
    assert "NoSuchKey" in finished.cause


def _flaky_reading(functions: dict, failing: set, calls: dict, **fields) -> dict:
    def flaky(event, context):
        calls[event["id"]] = calls.get(event["id"], 0) + 1
        if event["id"] in failing:
            raise RuntimeError(f"item {event['id']} failed")
        return event["id"] * 10

    functions[ARN + "Flaky"] = flaky
    reader = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"}, "Parameters": {"Bucket": "items", "Key": "orders.json"}}
    return distributed_map({"Flaky": {"Type": "Task", "Resource": ARN + "Flaky", "End": True}}, ItemReader=reader, Label="Read", **fields)


@pytest.mark.parametrize("batched", [False, True])
def test_a_redriven_map_run_of_read_items_reruns_only_its_unsuccessful_children_and_reads_nothing_again(run, engine, functions, s3, batched):
    # Redrive (https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html): the same Map Run; the
    # succeeded children keep their output; the failed one is redriven; the one never started starts with its item.
    s3.put_object(Bucket="items", Key="orders.json", Body=json.dumps([{"id": 1}, {"id": 2}, {"id": 3}]))
    failing, calls = {2}, {}
    fields = {"MaxConcurrency": 1, "ItemSelector": {"id.$": "$$.Map.Item.Value.id"}}
    if batched:  # each child a batch of one, with its BatchInput: the kept inputs are the batches, not the items
        fields = {**fields, "ItemBatcher": {"MaxItemsPerBatch": 1, "BatchInput": {"from": "orders"}}}
    definition = _flaky_reading(functions, failing, calls, **fields)
    if batched:
        definition["States"]["Fan"]["ItemProcessor"]["States"]["Flaky"]["Parameters"] = {"id.$": "$.Items[0].id"}
    failed = run(definition)
    assert (failed.status, failed.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    (map_run,) = engine.list_map_runs(failed.arn)
    assert engine.describe_map_run(map_run["mapRunArn"])["executionCounts"]["pending"] == 1

    s3.delete_object(Bucket="items", Key="orders.json")  # read once: a redrive reads no item again
    failing.clear()
    engine.redrive_execution(failed.arn)
    finished = engine.wait_for_execution(failed.arn, timeout=20)
    assert finished["status"] == "SUCCEEDED" and json.loads(finished["output"]) == [10, 20, 30]
    assert calls == {1: 1, 2: 2, 3: 1}
    assert [item["mapRunArn"] for item in engine.list_map_runs(failed.arn)] == [map_run["mapRunArn"]]
    described = engine.describe_map_run(map_run["mapRunArn"])
    assert (described["status"], described["redriveCount"], described["executionCounts"]["succeeded"]) == ("SUCCEEDED", 1, 3)
    assert described["itemCounts"]["total"] == 3
    children = engine.list_executions(map_run_arn=map_run["mapRunArn"])
    assert sorted(child["redriveCount"] for child in children) == [0, 0, 1]
    inputs = [json.loads(engine.describe_execution(child["executionArn"])["input"]) for child in children]
    if batched:
        assert inputs == [{"BatchInput": {"from": "orders"}, "Items": [{"id": n}]} for n in (1, 2, 3)]
    else:
        assert inputs == [{"id": 1}, {"id": 2}, {"id": 3}]
    types = [event["type"] for event in engine.get_execution_history(failed.arn)]
    assert types[types.index("ExecutionRedriven"):] == [
        "ExecutionRedriven", "MapRunRedriven", "MapRunSucceeded", "MapStateSucceeded", "MapStateExited", "ExecutionSucceeded",
    ]


def test_a_stopped_map_run_of_read_items_is_redriven_with_the_items_it_had_not_started(engine, functions, s3):
    s3.put_object(Bucket="items", Key="orders.json", Body=json.dumps([{"id": 1}, {"id": 2}]))
    entered, release = threading.Event(), threading.Event()

    def hold(event, context):
        entered.set()
        release.wait(20)
        return event

    functions[ARN + "Hold"] = hold
    reader = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"}, "Parameters": {"Bucket": "items", "Key": "orders.json"}}
    definition = distributed_map({"Hold": {"Type": "Task", "Resource": ARN + "Hold", "End": True}}, ItemReader=reader, MaxConcurrency=1)
    arn = engine.start_execution(engine.create_state_machine("Stopped", json.dumps(definition)), "{}")
    assert entered.wait(20), "the first child never called its task"
    engine.stop_execution(arn)
    release.set()
    assert engine.describe_execution(arn)["status"] == "ABORTED"
    (map_run,) = engine.list_map_runs(arn)
    assert engine.describe_map_run(map_run["mapRunArn"])["executionCounts"]["pending"] == 1

    s3.delete_object(Bucket="items", Key="orders.json")
    engine.redrive_execution(arn)
    finished = engine.wait_for_execution(arn, timeout=20)
    assert finished["status"] == "SUCCEEDED" and json.loads(finished["output"]) == [{"id": 1}, {"id": 2}]
    children = engine.list_executions(map_run_arn=map_run["mapRunArn"])
    assert sorted((child["status"], child["redriveCount"]) for child in children) == [("SUCCEEDED", 0), ("SUCCEEDED", 1)]


@pytest.mark.parametrize("container", ["Parallel", "Map"])
def test_a_distributed_map_inside_a_parallel_or_map_redrives_its_own_map_run(run, engine, functions, container):
    failing, calls = {2}, {}

    def flaky(event, context):
        calls[event] = calls.get(event, 0) + 1
        if event in failing:
            raise RuntimeError(f"item {event} failed")
        return event * 10

    functions[ARN + "Flaky"] = flaky
    inner = distributed_map({"Flaky": {"Type": "Task", "Resource": ARN + "Flaky", "End": True}}, Label="Inner", MaxConcurrency=1, ItemsPath="$.items")
    inner_branch = {"StartAt": "Fan", "States": inner["States"]}
    if container == "Parallel":
        outer = {"Type": "Parallel", "End": True, "Branches": [{"StartAt": "Other", "States": {"Other": {"Type": "Pass", "Result": "other", "End": True}}}, inner_branch]}
        execution_input, expected = {"items": [1, 2, 3]}, ["other", [10, 20, 30]]
    else:
        # One group at a time: the first group's Map Run succeeds before the second's fails (else it is aborted, and redriven too).
        outer = {"Type": "Map", "End": True, "ItemsPath": "$.groups", "MaxConcurrency": 1, "ItemProcessor": inner_branch}
        execution_input, expected = {"groups": [{"items": [4]}, {"items": [1, 2, 3]}]}, [[40], [10, 20, 30]]
    failed = run({"StartAt": "Outer", "States": {"Outer": outer}}, execution_input)
    assert (failed.status, failed.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    runs_before = engine.list_map_runs(failed.arn)
    failed_run = next(item for item in runs_before if engine.describe_map_run(item["mapRunArn"])["status"] == "FAILED")

    failing.clear()
    engine.redrive_execution(failed.arn)
    finished = engine.wait_for_execution(failed.arn, timeout=20)
    assert finished["status"] == "SUCCEEDED" and json.loads(finished["output"]) == expected
    assert {1: 1, 2: 2, 3: 1}.items() <= calls.items()  # the succeeded child kept its output, the unstarted one ran once
    # The same Map Runs: the failed one redriven, no new one started.
    assert sorted(item["mapRunArn"] for item in engine.list_map_runs(failed.arn)) == sorted(item["mapRunArn"] for item in runs_before)
    described = engine.describe_map_run(failed_run["mapRunArn"])
    assert (described["status"], described["redriveCount"], described["executionCounts"]["succeeded"]) == ("SUCCEEDED", 1, 3)
    history = engine.get_execution_history(failed.arn)
    types = [event["type"] for event in history]
    after = types[types.index("ExecutionRedriven"):]
    assert after.count("MapRunRedriven") == 1 and "MapRunStarted" not in after
    assert [event["id"] for event in history] == list(range(1, len(history) + 1))


def test_a_map_run_described_as_aws_recorded_it(run, engine, s3):
    # AWS's DescribeMapRun of this definition and file, as LocalStack's snapshot test recorded it on AWS
    # (tests/aws/services/stepfunctions/v2/test_sfn_api_map_run.snapshot.json, 21-09-2023): no ResultWriter, yet
    # both results count as written. (Recorded before redrive: without failuresNotRedrivable and pendingRedrive.)
    s3.put_object(Bucket="items", Key="file.csv", Body="Col1,Col2,Col3\nValue1,Value2,Value3\nValue4,Value5,Value6")
    reader = {"ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}, "Resource": "arn:aws:states:::s3:getObject",
              "Parameters": {"Bucket.$": "$.Bucket", "Key.$": "$.Key"}}
    definition = distributed_map({"PassItem": {"Type": "Pass", "End": True}}, MaxConcurrency=1, ItemReader=reader)
    finished = run(definition, {"Bucket": "items", "Key": "file.csv"})
    assert finished.status == "SUCCEEDED"
    described = engine.describe_map_run(engine.list_map_runs(finished.arn)[0]["mapRunArn"])
    recorded = {"aborted": 0, "failed": 0, "pending": 0, "resultsWritten": 2, "running": 0, "succeeded": 2, "timedOut": 0, "total": 2}
    for counts in (described["executionCounts"], described["itemCounts"]):
        assert {key: counts[key] for key in recorded} == recorded
    assert (described["status"], described["maxConcurrency"], described["toleratedFailureCount"], described["toleratedFailurePercentage"]) == ("SUCCEEDED", 1, 0, 0.0)


def test_a_map_run_and_its_child_executions_are_journaled(run, engine):
    finished = run(distributed_map({"Item": {"Type": "Pass", "End": True}}, Label="Once"), [1, 2])
    runs = engine.list_map_runs(finished.arn)
    started = finished.events("MapRunStarted")[0]
    assert [item["mapRunArn"] for item in runs] == [started["mapRunStartedEventDetails"]["mapRunArn"]]
    assert runs[0]["startDate"] == started["timestamp"] and runs[0]["stopDate"] == finished.events("MapRunSucceeded")[0]["timestamp"]
    children = engine.list_executions(map_run_arn=runs[0]["mapRunArn"])
    assert [child["status"] for child in children] == ["SUCCEEDED", "SUCCEEDED"]
    assert [json.loads(engine.describe_execution(child["executionArn"])["input"]) for child in children] == [1, 2]


def test_result_writer_puts_the_results_and_a_manifest_in_s3(run, s3, functions, engine):
    def check(event, context):
        if event == 2:
            raise ValueError("two")
        return event * 10

    functions[ARN + "Check"] = check
    definition = distributed_map(
        {"Check": {"Type": "Task", "Resource": ARN + "Check", "End": True}},
        ToleratedFailureCount=1,
        ResultWriter={"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "items", "Prefix.$": "$.prefix"}},
        ItemsPath="$.items",
    )
    finished = run(definition, {"prefix": "runs", "items": [1, 2, 3]})
    assert finished.status == "SUCCEEDED"
    run_arn = finished.events("MapRunStarted")[0]["mapRunStartedEventDetails"]["mapRunArn"]
    details = finished.output["ResultWriterDetails"]
    assert finished.output["MapRunArn"] == run_arn
    assert details == {"Bucket": "items", "Key": f"runs/{run_arn.rsplit(':', 1)[1]}/manifest.json"}
    manifest = json.loads(s3.get_object(Bucket="items", Key=details["Key"])["Body"].read())
    assert manifest["MapRunArn"] == run_arn and manifest["DestinationBucket"] == "items" and manifest["ResultFiles"]["PENDING"] == []
    succeeded = json.loads(s3.get_object(Bucket="items", Key=manifest["ResultFiles"]["SUCCEEDED"][0]["Key"])["Body"].read())
    failed = json.loads(s3.get_object(Bucket="items", Key=manifest["ResultFiles"]["FAILED"][0]["Key"])["Body"].read())
    assert [json.loads(entry["Output"]) for entry in succeeded] == [10, 30]
    assert [(entry["Error"], entry["Status"], entry["RedriveStatus"]) for entry in failed] == [("ValueError", "FAILED", "REDRIVABLE_BY_MAP_RUN")]
    children = {child["executionArn"]: child for child in engine.list_executions(map_run_arn=run_arn)}
    first = succeeded[0]
    assert first["ExecutionArn"] in children and first["Name"] == children[first["ExecutionArn"]]["name"]
    assert (first["Input"], first["InputDetails"], first["OutputDetails"], first["Status"]) == ("1", {"Included": True}, {"Included": True}, "SUCCEEDED")
    assert first["StateMachineArn"] == children[first["ExecutionArn"]]["stateMachineArn"] and first["StartDate"].endswith("Z")
    assert engine.describe_map_run(run_arn)["executionCounts"]["resultsWritten"] == 3


@pytest.mark.parametrize(
    ("config", "lines"),
    [
        ({"Transformation": "COMPACT"}, False),
        ({"Transformation": "FLATTEN", "OutputType": "JSONL"}, True),
    ],
)
def test_writer_config_shapes_the_written_results(run, s3, config, lines):
    definition = distributed_map(
        {"Pair": {"Type": "Pass", "Parameters": {"pair.$": "States.Array($, $)"}, "OutputPath": "$.pair", "End": True}},
        ResultWriter={"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "items", "Prefix": "shaped"}, "WriterConfig": config},
    )
    finished = run(definition, [1, 2])
    manifest = json.loads(s3.get_object(Bucket="items", Key=finished.output["ResultWriterDetails"]["Key"])["Body"].read())
    body = s3.get_object(Bucket="items", Key=manifest["ResultFiles"]["SUCCEEDED"][0]["Key"])["Body"].read().decode()
    written = [json.loads(line) for line in body.splitlines()] if lines else json.loads(body)
    assert written == ([1, 1, 2, 2] if config["Transformation"] == "FLATTEN" else [[1, 1], [2, 2]])


def test_writer_config_alone_makes_the_results_the_state_result(run):
    definition = distributed_map(
        {"Pair": {"Type": "Pass", "Parameters": {"pair.$": "States.Array($, $)"}, "OutputPath": "$.pair", "End": True}},
        ResultWriter={"WriterConfig": {"Transformation": "FLATTEN"}},
    )
    assert run(definition, [1, 2]).output == [1, 1, 2, 2]


def test_a_distributed_map_inside_a_child_execution_is_that_childs_map_run(run, engine):
    inner = {"Type": "Map", "Label": "Inner", "ItemProcessor": {"ProcessorConfig": DISTRIBUTED, "StartAt": "Leaf", "States": {"Leaf": {"Type": "Pass", "End": True}}}, "End": True}
    finished = run(distributed_map({"Inner": inner}, Label="Outer"), [[1, 2], [3]])
    assert (finished.status, finished.output) == ("SUCCEEDED", [[1, 2], [3]])
    (outer,) = engine.list_map_runs(finished.arn)
    children = engine.list_executions(map_run_arn=outer["mapRunArn"])
    inner_runs = [engine.list_map_runs(child["executionArn"]) for child in children]
    assert [len(runs) for runs in inner_runs] == [1, 1]
    grandchildren = engine.list_executions(map_run_arn=inner_runs[0][0]["mapRunArn"])
    assert [json.loads(engine.describe_execution(child["executionArn"])["output"]) for child in grandchildren] == [1, 2]
    child_history = engine.get_execution_history(children[0]["executionArn"])
    assert [event["id"] for event in child_history] == list(range(1, len(child_history) + 1))
    assert "MapRunStarted" in [event["type"] for event in child_history] and "PassStateEntered" not in [event["type"] for event in child_history]


def test_a_child_execution_reads_its_own_execution_in_the_context_object(run, engine):
    context = {"Type": "Pass", "Parameters": {"id.$": "$$.Execution.Id", "input.$": "$$.Execution.Input", "machine.$": "$$.StateMachine.Id"}, "End": True}
    finished = run(distributed_map({"Context": context}, Label="Own"), [{"n": 1}])
    (child,) = engine.list_executions(map_run_arn=engine.list_map_runs(finished.arn)[0]["mapRunArn"])
    assert finished.output == [{"id": child["executionArn"], "input": {"n": 1}, "machine": child["stateMachineArn"]}]
