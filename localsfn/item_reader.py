"""A Distributed Map's ItemReader: the items of an S3 object (JSON, JSON Lines, CSV, S3 inventory manifest) or listing.

As the developer guide describes it
(https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html):

* `arn:aws:states:::s3:getObject` with `ReaderConfig.InputType`
  `JSON` (an array), `JSONL` (a value per line), `CSV` (rows as objects,
  headers from the first row or `CSVHeaders`) or `MANIFEST` (an S3
  inventory `manifest.json`: every row of every listed CSV file, named by
  its `fileSchema`);
* `arn:aws:states:::s3:listObjectsV2`: one item per object
  (`Key`, `Etag`, `LastModified`, `Size`, `StorageClass`);
* `ReaderConfig.MaxItems` keeps the first items only.

`read_items` blocks on S3 (boto3, so `AWS_ENDPOINT_URL_S3` or moto decide
where); the engine calls it on its worker pool, never on its loop.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

GET_OBJECT = "arn:aws:states:::s3:getObject"
LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
RESOURCES = (GET_OBJECT, LIST_OBJECTS)
INPUT_TYPES = ("JSON", "JSONL", "CSV", "MANIFEST")
ERROR = "States.ItemReaderFailed"
HANDLER_ARN = "localsfn:item-reader"  # names the reader's call in a path's journaled task


class ItemReaderFailed(Exception):
    """The reader could not produce a list of items; the message says why."""


def read_items(reader: dict, s3: Any = None) -> list:
    """The items `reader` (`{"Resource", "Parameters", "ReaderConfig"}`, already rendered) names. Blocks on S3."""
    if s3 is None:
        import boto3

        s3 = boto3.client("s3")
    resource, parameters = reader["Resource"], reader.get("Parameters") or {}
    config = reader.get("ReaderConfig") or {}
    bucket = parameters.get("Bucket")
    if not isinstance(bucket, str):
        raise ItemReaderFailed("the ItemReader's Parameters need a Bucket")
    if resource == LIST_OBJECTS:
        items = _listing(s3, bucket, parameters.get("Prefix", ""))
    else:
        key = parameters.get("Key")
        if not isinstance(key, str):
            raise ItemReaderFailed("the ItemReader's Parameters need a Key")
        items = _object_items(s3, bucket, key, config)
    limit = config.get("MaxItems")
    return items[:limit] if isinstance(limit, int) and limit > 0 else items


def handler(event: dict) -> list:
    """`read_items` as a callable the engine runs like a Lambda handler; failures become States.ItemReaderFailed."""
    try:
        return read_items(event)
    except ItemReaderFailed:
        raise
    except Exception as error:  # noqa: BLE001 - S3's errors, parse errors: all are the reader's failure
        raise ItemReaderFailed(f"{type(error).__name__}: {error}") from None


def items_from_text(text: str, config: dict) -> list:
    """The items of an object's text as the ItemReader reads it (JSON, JSONL or CSV), for TestState's mapItemReaderData."""
    kind = config.get("InputType", "JSON")
    if kind == "JSONL":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if kind == "CSV":
        headers = config.get("CSVHeaders") if config.get("CSVHeaderLocation") == "GIVEN" else None
        return _csv_rows(text, headers, _delimiter(config))
    items = json.loads(text)
    if not isinstance(items, list):
        raise ItemReaderFailed("the data does not hold a JSON array")
    return items


def _object_items(s3: Any, bucket: str, key: str, config: dict) -> list:
    kind = config.get("InputType", "JSON")
    body = _get(s3, bucket, key)
    if kind == "JSON":
        items = json.loads(body)
        if not isinstance(items, list):
            raise ItemReaderFailed(f"s3://{bucket}/{key} does not hold a JSON array")
        return items
    if kind == "JSONL":
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    if kind == "CSV":
        headers = config.get("CSVHeaders") if config.get("CSVHeaderLocation") == "GIVEN" else None
        return _csv_rows(body.decode(), headers, _delimiter(config))
    if kind == "MANIFEST":
        return _manifest_rows(s3, json.loads(body))
    raise ItemReaderFailed(f"InputType {kind!r} is not one of {', '.join(INPUT_TYPES)}")


def _csv_rows(text: str, headers: list | None, delimiter: str) -> list[dict]:
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if headers is None:
        if not rows:
            return []
        headers, rows = rows[0], rows[1:]
    found = []
    for number, row in enumerate(rows, start=1):
        if not row:
            continue
        if len(row) != len(headers):
            raise ItemReaderFailed(f"CSV row {number} has {len(row)} fields, the headers {len(headers)}")
        found.append(dict(zip(headers, row, strict=True)))
    return found


def _manifest_rows(s3: Any, manifest: dict) -> list[dict]:
    if manifest.get("fileFormat", "CSV") != "CSV":
        raise ItemReaderFailed(f"an S3 inventory in {manifest.get('fileFormat')} is not supported here, only CSV")
    headers = [name.strip() for name in manifest.get("fileSchema", "").split(",")]
    bucket = manifest.get("destinationBucket", "").removeprefix("arn:aws:s3:::")
    rows: list[dict] = []
    for listed in manifest.get("files", ()):
        body = _get(s3, bucket, listed["key"])
        if listed["key"].endswith(".gz"):
            body = gzip.decompress(body)
        rows += _csv_rows(body.decode(), headers, ",")
    return rows


def _listing(s3: Any, bucket: str, prefix: str) -> list[dict]:
    items = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", ()):
            items.append({
                "Etag": entry.get("ETag"), "Key": entry["Key"], "LastModified": entry["LastModified"].timestamp(),
                "Size": entry.get("Size"), "StorageClass": entry.get("StorageClass", "STANDARD"),
            })
    return items


def _get(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _delimiter(config: dict) -> str:
    names = {"COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "SPACE": " ", "TAB": "\t"}
    return names.get(config.get("CSVDelimiter", "COMMA"), ",")
