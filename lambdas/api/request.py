"""Reading a request: its body, path and query parameters, each checked with an error naming the field.

Every function here raises `ApiError` (400, 404, 413 or 422) for client
input it refuses, before anything is created.
"""

from __future__ import annotations

import binascii
import json
import re
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from lambdas import connections, pipeline_request, registry
from lambdas.api import authz
from lambdas.api.answers import ApiError
from lambdas.errors import SpecInvalid
from lambdas.spec import MAX_SPEC_BYTES, PipelineSpec, parse_spec, schema, validation_problems

STATUSES = tuple(status.value for status in registry.PipelineStatus)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_COMMENT_CHARS = 1000
MAX_PROBLEM_CHARS = 300
# Far above any valid spec, low enough that parsing it is cheap.
MAX_BODY_CHARS = 16 * MAX_SPEC_BYTES
PIPELINE_ID_PATTERN = re.compile(schema()["properties"]["pipeline_id"]["pattern"])
OWNER_PATTERN = re.compile(schema()["properties"]["owner"]["pattern"])


def json_body(event: APIGatewayProxyEvent) -> Any:
    """The request body as JSON; 400 naming the problem when it is not."""
    raw = event.body
    if raw is None or raw == "":
        raise ApiError(HTTPStatus.BAD_REQUEST, "the request body is empty; a JSON object is expected", field="body")
    if len(raw) > MAX_BODY_CHARS:
        raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request body is larger than {MAX_BODY_CHARS} bytes",
                       field="body")
    try:
        text = event.decoded_body if event.is_base64_encoded else raw
        return json.loads(text)
    except (ValueError, binascii.Error, RecursionError) as error:
        # ValueError covers JSONDecodeError and undecodable UTF-8.
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not valid JSON"
        raise ApiError(HTTPStatus.BAD_REQUEST, f"the request body is not valid JSON: {reason}", field="body") from None


def _problem(text: str) -> dict[str, str]:
    """`"source.tables[1]: ..."` as {"field", "message"}; messages quoting a large value are cut short."""
    field, _, message = text.partition(": ")
    if len(message) > MAX_PROBLEM_CHARS:
        message = message[:MAX_PROBLEM_CHARS] + "..."
    return {"field": field, "message": message}


def caller(event: APIGatewayProxyEvent) -> authz.Caller:
    """Who is asking (403 when unsigned or unregistered), read before anything else."""
    return authz.caller_of(event.raw_event)


def _invalid_request(problems: list[dict[str, str]]) -> ApiError:
    summary = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
    return ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"the pipeline spec is invalid: {summary}",
                    field=problems[0]["field"], problems=problems)


def requested_spec(document: Any, asker: authz.Caller) -> PipelineSpec:
    """The spec a team's request resolves to, once the caller may ask for it and its team may use its connections.

    422 listing every schema problem; 403 naming the team or connection refused.
    """
    try:
        checked = pipeline_request.validate(document)
    except pipeline_request.RequestInvalid as error:
        raise _invalid_request([_problem(str(problem)) for problem in error.problems]) from None
    owner = authz.owner_for_request(asker, checked.get("owner"))
    try:
        return pipeline_request.resolve({**checked, "owner": owner}, connections.get_connection)
    except pipeline_request.RequestInvalid as error:
        raise _invalid_request([_problem(str(problem)) for problem in error.problems]) from None
    except pipeline_request.ConnectionRefused as error:
        raise ApiError(HTTPStatus.FORBIDDEN, str(error), field=error.field) from None
    except SpecInvalid as error:
        raise _invalid_request([_problem(str(error))]) from None


def _pipeline_id(raw: str) -> str:
    if not PIPELINE_ID_PATTERN.fullmatch(raw):
        raise ApiError(HTTPStatus.NOT_FOUND, f"no pipeline {raw[:80]!r} (pipeline ids match "
                       f"{PIPELINE_ID_PATTERN.pattern})", field="id")
    return raw


def registered_entry(pipeline_id: str) -> registry.RegistryEntry:
    """The registry entry of the pipeline the path names; 404 when there is none."""
    entry = registry.get(_pipeline_id(pipeline_id))
    if entry is None:
        raise ApiError(HTTPStatus.NOT_FOUND, f"no pipeline {pipeline_id!r}", field="id")
    return entry


def listing_filters(event: APIGatewayProxyEvent) -> tuple[str | None, str | None, int, str | None]:
    """`GET /pipelines`'s query: status, owner, page size and the next page's token."""
    status = event.get_query_string_value("status")
    owner = event.get_query_string_value("owner")
    if status is not None and status not in STATUSES:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"status must be one of {', '.join(STATUSES)}", field="status")
    if owner is not None and not OWNER_PATTERN.fullmatch(owner):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"owner must match {OWNER_PATTERN.pattern}", field="owner")
    limit = _page_size(event.get_query_string_value("limit"))
    return status, owner, limit, event.get_query_string_value("next_token")


def _page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"limit must be an integer from 1 to {MAX_PAGE_SIZE}", field="limit")
    return int(raw)


def keep_flag(event: APIGatewayProxyEvent, name: str) -> bool:
    """`DELETE /pipelines/{id}?keep_topics=true|false&keep_index=true|false` (each default false)."""
    raw = event.get_query_string_value(name)
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{name} must be true or false", field=name)
    return raw.lower() == "true"


def approval_decision(event: APIGatewayProxyEvent) -> tuple[bool, str | None]:
    """`{"approved": bool, "comment"?: str}`: the decision and its comment."""
    body = json_body(event)
    if not isinstance(body, dict):
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "the body must be a JSON object with 'approved'",
                       field="(body)")
    unknown = sorted(set(body) - {"approved", "comment"})
    if unknown:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"unknown field {unknown[0]!r}", field=unknown[0])
    approved = body.get("approved")
    if not isinstance(approved, bool):
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "approved must be true or false", field="approved")
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"comment must be a string of at most {MAX_COMMENT_CHARS} "
                       "characters", field="comment")
    return approved, comment
