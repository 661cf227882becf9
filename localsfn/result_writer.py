"""A Distributed Map's ResultWriter: the results of its child executions as files in S3, and a manifest naming them.

As the developer guide describes it
(https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html):
under `{Prefix}/{map run id}/`, `SUCCEEDED_0.json` and `FAILED_0.json` hold
one entry per child execution of that status (its ARN, name, input, output
or error and cause, status, dates and redrive status) and `manifest.json`
lists them; the Map state's result becomes `{"MapRunArn",
"ResultWriterDetails": {"Bucket", "Key"}}` with the manifest's key.
`WriterConfig` picks the entries' form (`Transformation`: NONE, the default
when writing to S3, COMPACT or FLATTEN: the outputs alone) and the files'
(`OutputType`: JSON, an array, or JSONL, one entry a line); a ResultWriter
with a WriterConfig and no Resource writes nothing and makes the transformed
results the state's result. Blocks on S3; the engine calls it on its worker pool.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from localsfn.timestamps import iso_timestamp

PUT_OBJECT = "arn:aws:states:::s3:putObject"
ERROR = "States.ResultWriterFailed"
HANDLER_ARN = "localsfn:result-writer"  # names the writer's call in a path's journaled task
TRANSFORMATIONS = ("NONE", "COMPACT", "FLATTEN")
OUTPUT_TYPES = ("JSON", "JSONL")
# A failed child execution of a Map Run is redriven by redriving its parent (ExecutionRedriveStatus REDRIVABLE_BY_MAP_RUN).
_REDRIVE = {
    "SUCCEEDED": ("NOT_REDRIVABLE", "Execution is SUCCEEDED and cannot be redriven"),
    "FAILED": ("REDRIVABLE_BY_MAP_RUN", None),
    "ABORTED": ("REDRIVABLE_BY_MAP_RUN", None),
    "TIMED_OUT": ("REDRIVABLE_BY_MAP_RUN", None),
}
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class ResultWriterFailed(Exception):
    """The results could not be written; the message says why."""


def entry(row: dict) -> dict:
    """One child execution (its journal row) as AWS writes it with Transformation NONE."""
    written = {
        "ExecutionArn": row["arn"], "Input": row["input"], "InputDetails": {"Included": True}, "Name": row["name"],
    }
    if row["status"] == "SUCCEEDED":
        written.update(Output=row["output"], OutputDetails={"Included": True})
    else:
        for key in ("error", "cause"):
            if row.get(key) is not None:
                written[key.capitalize()] = row[key]
    redrive_status, reason = _REDRIVE.get(row["status"], ("NOT_REDRIVABLE", None))
    written.update(RedriveCount=row.get("redrive_count") or 0, RedriveStatus=redrive_status)
    if reason:
        written["RedriveStatusReason"] = reason
    written.update(StartDate=iso_timestamp(row["started"]), StateMachineArn=row["machine_arn"], Status=row["status"])
    if row.get("stopped") is not None:
        written["StopDate"] = iso_timestamp(row["stopped"])
    return written


def transformed(rows: list[dict], transformation: str) -> list:
    """The entries of `rows` under a WriterConfig Transformation; failed children stay whole entries, as AWS keeps them."""
    if transformation == "NONE":
        return [entry(row) for row in rows]
    results: list = []
    for row in rows:
        if row["status"] != "SUCCEEDED":
            results.append(entry(row))
            continue
        output = json.loads(row["output"])
        if transformation == "FLATTEN" and isinstance(output, list):
            results.extend(output)
        else:
            results.append(output)
    return results


def write_results(event: dict, executions: list[dict], s3: Any = None) -> dict:
    """Write the results of `executions` (a Map Run's child rows, in item order); returns the ResultWriterDetails.

    `event` is `{"Parameters": {"Bucket", "Prefix"} | None, "MapRunArn", "WriterConfig"}`;
    with no Parameters (WriterConfig alone) nothing is written and the answer is `{"Results": [...]}`.
    """
    config = event.get("WriterConfig") or {}
    parameters = event.get("Parameters")
    transformation = config.get("Transformation", "NONE" if parameters is not None else "COMPACT")
    output_type = config.get("OutputType", "JSON")
    if parameters is None:
        return {"Results": transformed(executions, transformation)}
    if s3 is None:
        import boto3

        s3 = boto3.client("s3")
    bucket = parameters.get("Bucket")
    if not isinstance(bucket, str):
        raise ResultWriterFailed("the ResultWriter's Parameters need a Bucket")
    prefix = parameters.get("Prefix", "")
    folder = "/".join(part for part in (prefix.strip("/"), event["MapRunArn"].rsplit(":", 1)[1]) if part)
    files: dict[str, list] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status in ("SUCCEEDED", "FAILED"):
        rows = [row for row in executions if (row["status"] == "SUCCEEDED") == (status == "SUCCEEDED")]
        if not rows:
            continue
        results = transformed(rows, transformation)
        if output_type == "JSONL":
            body = "".join(_dumps(result) + "\n" for result in results).encode()
        else:
            body = _dumps(results).encode()
        key = f"{folder}/{status}_0.json"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        files[status].append({"Key": key, "Size": len(body)})
    manifest = {"DestinationBucket": bucket, "MapRunArn": event["MapRunArn"], "ResultFiles": files}
    manifest_key = f"{folder}/manifest.json"
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
    return {"Bucket": bucket, "Key": manifest_key}


def handler_reading(executions_of: Callable[[str], list[dict]]) -> Callable[[dict], dict]:
    """`write_results` as a callable the engine runs like a Lambda handler; `executions_of(map run ARN)` gives the child rows."""

    def handler(event: dict) -> dict:
        try:
            return write_results(event, executions_of(event["MapRunArn"]))
        except ResultWriterFailed:
            raise
        except Exception as error:  # noqa: BLE001 - every S3 failure is the writer's failure
            raise ResultWriterFailed(f"{type(error).__name__}: {error}") from None

    return handler
