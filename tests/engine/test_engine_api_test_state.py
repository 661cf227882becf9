"""TestState through boto3: one state on one input, with inspection data, mocks, Retry and Catch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from localsfn import Engine, serve

ARN = "arn:aws:lambda:us-east-1:000000000000:function:Greet"
ROLE = "arn:aws:iam::000000000000:role/test-state"


@pytest.fixture
def client(tmp_path: Path) -> Iterator:
    engine = Engine(tmp_path / "journal.sqlite", {ARN: lambda event, context: {"greeting": f"hello {event['who']}"}})
    with serve(engine) as server:
        yield boto3.client(
            "stepfunctions", endpoint_url=server.endpoint_url, region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 0}, inject_host_prefix=False),
        )
    engine.close()


def _test(client, state: dict, state_input: dict, **options) -> dict:
    return client.test_state(definition=json.dumps(state), roleArn=ROLE, input=json.dumps(state_input), **options)


def test_a_task_calls_the_local_lambda_and_debug_shows_every_step(client):
    state = {
        "Type": "Task", "Resource": ARN, "InputPath": "$.person", "Parameters": {"who.$": "$.name"},
        "ResultSelector": {"text.$": "$.greeting"}, "ResultPath": "$.result", "OutputPath": "$.result", "Next": "Send",
    }
    answer = _test(client, state, {"person": {"name": "Ada"}}, inspectionLevel="DEBUG")
    assert answer["status"] == "SUCCEEDED" and answer["nextState"] == "Send"
    assert json.loads(answer["output"]) == {"text": "hello Ada"}
    data = {key: json.loads(value) for key, value in answer["inspectionData"].items()}
    assert data == {
        "input": {"person": {"name": "Ada"}},
        "afterInputPath": {"name": "Ada"},
        "afterParameters": {"who": "Ada"},
        "result": {"greeting": "hello Ada"},
        "afterResultSelector": {"text": "hello Ada"},
        "afterResultPath": {"person": {"name": "Ada"}, "result": {"text": "hello Ada"}},
    }


def test_info_level_gives_no_inspection_data_and_a_choice_names_its_next_state(client):
    choice = {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 5, "Next": "Big"}], "Default": "Small"}
    answer = _test(client, choice, {"n": 9})
    assert answer["status"] == "SUCCEEDED" and answer["nextState"] == "Big" and "inspectionData" not in answer
    assert _test(client, choice, {"n": 1})["nextState"] == "Small"


def test_a_mocked_error_is_retriable_then_caught_then_failed(client):
    state = {
        "Type": "Task", "Resource": ARN, "End": True,
        "Retry": [{"ErrorEquals": ["Busy"], "MaxAttempts": 2, "IntervalSeconds": 3, "BackoffRate": 2}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Undo"}],
    }
    busy = {"errorOutput": {"error": "Busy", "cause": "try later"}}
    retriable = _test(client, state, {"a": 1}, mock=busy, inspectionLevel="DEBUG", stateConfiguration={"retrierRetryCount": 1})
    assert retriable["status"] == "RETRIABLE" and retriable["error"] == "Busy" and retriable["cause"] == "try later"
    assert retriable["inspectionData"]["errorDetails"] == {"retryIndex": 0, "retryBackoffIntervalSeconds": 6}
    caught = _test(client, state, {"a": 1}, mock=busy, inspectionLevel="DEBUG", stateConfiguration={"retrierRetryCount": 2})
    assert caught["status"] == "CAUGHT_ERROR" and caught["nextState"] == "Undo"
    assert json.loads(caught["output"]) == {"a": 1, "error": {"Error": "Busy", "Cause": "try later"}}
    assert caught["inspectionData"]["errorDetails"] == {"catchIndex": 0}
    bare = {"Type": "Task", "Resource": ARN, "End": True}
    failed = _test(client, bare, {}, mock=busy)
    assert failed["status"] == "FAILED" and failed["error"] == "Busy"


def test_a_mocked_result_replaces_the_call_and_a_state_is_picked_from_a_machine(client):
    machine = {"StartAt": "Greet", "States": {"Greet": {"Type": "Task", "Resource": ARN, "ResultPath": "$.r", "End": True}}}
    answer = client.test_state(definition=json.dumps(machine), stateName="Greet", input="{}", mock={"result": '{"greeting": "mocked"}'})
    assert answer["status"] == "SUCCEEDED" and json.loads(answer["output"]) == {"r": {"greeting": "mocked"}}
    assert "nextState" not in answer


def test_a_fail_state_fails_and_an_invalid_state_is_refused(client):
    failed = _test(client, {"Type": "Fail", "Error": "Nope", "Cause": "because"}, {})
    assert failed["status"] == "FAILED" and failed["error"] == "Nope" and failed["cause"] == "because"
    with pytest.raises(client.exceptions.InvalidDefinition, match="Bogus"):
        _test(client, {"Type": "Pass", "Bogus": 1, "End": True}, {})


def test_a_jsonata_task_shows_its_arguments_result_and_assigned_variables(client):
    state = {
        "Type": "Task", "QueryLanguage": "JSONata", "Resource": ARN,
        "Arguments": {"who": "{% $states.input.person & ' ' & $suffix %}"},
        "Output": "{% {'text': $states.result.greeting} %}",
        "Assign": {"greeted": "{% $states.result.greeting %}"},
        "Next": "Send",
    }
    answer = _test(client, state, {"person": "Ada"}, inspectionLevel="DEBUG", variables=json.dumps({"suffix": "L."}))
    assert answer["status"] == "SUCCEEDED" and answer["nextState"] == "Send"
    assert json.loads(answer["output"]) == {"text": "hello Ada L."}
    assert json.loads(answer["inspectionData"]["afterArguments"]) == {"who": "Ada L."}
    assert json.loads(answer["inspectionData"]["result"]) == {"greeting": "hello Ada L."}
    assert json.loads(answer["inspectionData"]["variables"]) == {"suffix": "L.", "greeted": "hello Ada L."}


def test_a_jsonata_choice_and_a_caught_jsonata_error(client):
    choice = {"Type": "Choice", "QueryLanguage": "JSONata", "Choices": [{"Condition": "{% $states.input.n > 5 %}", "Next": "Big"}], "Default": "Small"}
    assert _test(client, choice, {"n": 9})["nextState"] == "Big"
    machine = {"QueryLanguage": "JSONata", "StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": ARN, "End": True,
        "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% {'failed': $states.errorOutput.Error} %}", "Next": "Undo"}],
    }, "Undo": {"Type": "Pass", "End": True}}}
    caught = client.test_state(definition=json.dumps(machine), stateName="Call", input="{}", mock={"errorOutput": {"error": "Boom", "cause": "x"}})
    assert caught["status"] == "CAUGHT_ERROR" and caught["nextState"] == "Undo"
    assert json.loads(caught["output"]) == {"failed": "Boom"}


# ---------------------------------------------------------------------- Map and Parallel, with a mock
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_TestState.html: "TestState only supports
# the following when a mock is specified: ... Parallel, or Map states"; TestStateConfiguration's
# errorCausedByState, mapIterationFailureCount and mapItemReaderData.

MAP = {
    "Type": "Map", "InputPath": "$.order", "ItemsPath": "$.lines",
    "ItemSelector": {"sku.$": "$$.Map.Item.Value.sku", "position.$": "$$.Map.Item.Index"},
    "ItemProcessor": {"StartAt": "Price", "States": {"Price": {"Type": "Task", "Resource": ARN, "End": True}}},
    "ResultSelector": {"count.$": "States.ArrayLength($)"}, "ResultPath": "$.priced", "Next": "Ship",
}


def test_a_map_state_runs_its_input_processing_and_takes_the_mocked_result(client):
    order = {"order": {"lines": [{"sku": "a"}, {"sku": "b"}]}}
    answer = _test(client, MAP, order, inspectionLevel="DEBUG", mock={"result": json.dumps([1, 2])})
    assert (answer["status"], answer["nextState"]) == ("SUCCEEDED", "Ship")
    assert json.loads(answer["output"]) == {**order, "priced": {"count": 2}}  # ResultPath writes into the raw input
    data = answer["inspectionData"]
    assert json.loads(data["afterItemsPath"]) == [{"sku": "a"}, {"sku": "b"}]
    assert json.loads(data["afterItemSelector"]) == [{"sku": "a", "position": 0}, {"sku": "b", "position": 1}]
    assert json.loads(data["result"]) == [1, 2] and json.loads(data["afterResultSelector"]) == {"count": 2}
    assert data["maxConcurrency"] == 0


def test_map_and_parallel_states_need_a_mock(client):
    parallel = {"Type": "Parallel", "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}], "End": True}
    for state in (MAP, parallel):
        with pytest.raises(client.exceptions.ValidationException, match="only with a mock"):
            _test(client, state, {"order": {"lines": []}})


def test_a_mocked_branch_error_is_caught_and_the_state_it_came_from_is_checked(client):
    parallel = {
        "Type": "Parallel", "Branches": [{"StartAt": "Charge", "States": {"Charge": {"Type": "Task", "Resource": ARN, "End": True}}}],
        "Catch": [{"ErrorEquals": ["Card.Declined"], "ResultPath": "$.problem", "Next": "Apologise"}], "End": True,
    }
    mock = {"errorOutput": {"error": "Card.Declined", "cause": "no funds"}}
    answer = _test(client, parallel, {"order": 1}, mock=mock, stateConfiguration={"errorCausedByState": "Charge"}, inspectionLevel="DEBUG")
    assert (answer["status"], answer["nextState"], answer["error"]) == ("CAUGHT_ERROR", "Apologise", "Card.Declined")
    assert json.loads(answer["output"]) == {"order": 1, "problem": {"Error": "Card.Declined", "Cause": "no funds"}}
    assert answer["inspectionData"]["errorDetails"] == {"catchIndex": 0}
    with pytest.raises(client.exceptions.ValidationException, match="errorCausedByState 'Refund'"):
        _test(client, parallel, {}, mock=mock, stateConfiguration={"errorCausedByState": "Refund"})


def test_a_distributed_map_reads_the_given_item_data_and_fails_beyond_its_tolerance(client):
    state = {
        "Type": "Map", "ToleratedFailureCount": 1, "MaxConcurrency": 5,
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
                       "Parameters": {"Bucket": "b", "Key": "k.csv"}},
        "ItemBatcher": {"MaxItemsPerBatch": 2},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
        "End": True,
    }
    csv_data = "id,n\n1,10\n2,20\n3,30\n"
    answer = _test(client, state, {}, inspectionLevel="DEBUG", mock={"result": "[]"}, stateConfiguration={"mapItemReaderData": csv_data, "mapIterationFailureCount": 1})
    assert answer["status"] == "SUCCEEDED"
    data = answer["inspectionData"]
    assert json.loads(data["afterItemBatcher"]) == [{"Items": [{"id": "1", "n": "10"}, {"id": "2", "n": "20"}]}, {"Items": [{"id": "3", "n": "30"}]}]
    assert (data["toleratedFailureCount"], data["toleratedFailurePercentage"], data["maxConcurrency"]) == (1, 0.0, 5)
    over = _test(client, state, {}, mock={"result": "[]"}, stateConfiguration={"mapItemReaderData": csv_data, "mapIterationFailureCount": 2})
    assert (over["status"], over["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold")


def test_a_jsonata_parallel_state_shapes_the_mocked_result_with_output(client):
    parallel = {
        "Type": "Parallel", "QueryLanguage": "JSONata", "Arguments": {"id": "{% $states.input.id %}"},
        "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}],
        "Output": {"total": "{% $sum($states.result) %}"}, "End": True,
    }
    answer = _test(client, parallel, {"id": 3}, inspectionLevel="DEBUG", mock={"result": "[1, 2]"})
    assert json.loads(answer["output"]) == {"total": 3}
    assert json.loads(answer["inspectionData"]["afterArguments"]) == {"id": 3}
