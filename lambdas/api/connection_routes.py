"""The `/connections` routes: platform admins register sources, Kafka clusters and sinks; teams see theirs.

Admins see every connection as registered. A team member sees only the
connections its teams may use, and of those only what a spec needs to name
them (`Connection.team_view`): no host, URL or secret name.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from lambdas import connections, registry
from lambdas.api import authz, request
from lambdas.api.answers import ApiError
from lambdas.common import logger

router = APIGatewayRouter()

# Pipelines in these states hold nothing on their connections any more.
_RELEASED = frozenset({registry.PipelineStatus.DELETED})


def _view(asker: authz.Caller, connection: connections.Connection) -> dict[str, Any]:
    return connection.document if asker.is_admin else connection.team_view()


def _usable(asker: authz.Caller, connection: connections.Connection) -> bool:
    return asker.is_admin or any(connection.allows(team) for team in asker.teams)


@router.post("/connections")
def register_connection() -> Response:
    """Register or replace a connection (admins only)."""
    asker = request.caller(router.current_event)
    authz.check_admin(asker, "register connections")
    try:
        connection = connections.put_connection(request.json_body(router.current_event))
    except connections.ConnectionInvalid as error:
        first = error.problems[0].partition(": ")[0]
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"the connection is invalid: {error}", field=first,
                       problems=error.problems) from None
    logger.info("connection registered", connection=connection.name, kind=connection.kind, admin=asker.arn)
    return Response(status_code=HTTPStatus.OK, content_type=content_types.APPLICATION_JSON, body=connection.document)


@router.get("/connections")
def list_connections() -> dict[str, Any]:
    """The connections the caller may use (every connection for admins)."""
    asker = request.caller(router.current_event)
    kind = router.current_event.get_query_string_value("kind")
    if kind is not None and kind not in connections.KINDS:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"kind must be one of {', '.join(connections.KINDS)}", field="kind")
    found = connections.list_connections(kind)  # type: ignore[arg-type]
    return {"connections": [_view(asker, connection) for connection in found if _usable(asker, connection)]}


def _registered(name: str) -> connections.Connection:
    connection = connections.get_connection(name) if len(name) <= 63 else None
    if connection is None:
        raise ApiError(HTTPStatus.NOT_FOUND, f"no connection {name[:80]!r}", field="name")
    return connection


@router.get("/connections/<name>")
def describe_connection(name: str) -> dict[str, Any]:
    asker = request.caller(router.current_event)
    connection = _registered(name)
    if not _usable(asker, connection):
        raise authz.Forbidden(f"none of {asker.arn}'s teams may use connection {name!r}", field="name")
    return _view(asker, connection)


@router.delete("/connections/<name>")
def remove_connection(name: str) -> dict[str, Any]:
    """Remove a connection no pipeline uses any more (admins only); 409 naming the pipelines that do."""
    asker = request.caller(router.current_event)
    authz.check_admin(asker, "remove connections")
    connection = _registered(name)
    users = sorted(entry.pipeline_id for entry in _all_entries()
                   if entry.status not in _RELEASED and name in _connections_of(entry.spec))
    if users:
        raise ApiError(HTTPStatus.CONFLICT, f"connection {name!r} is used by pipelines {', '.join(users[:20])}; "
                       "tear them down first", field="name", pipelines=users)
    connections.delete_connection(connection.name)
    logger.info("connection removed", connection=name, admin=asker.arn)
    return {"name": name, "removed": True}


def _all_entries() -> list[registry.RegistryEntry]:
    entries, token = [], None
    while True:
        page = registry.list_entries(limit=100, start_key=token)
        entries.extend(page.entries)
        if page.next_key is None:
            return entries
        token = page.next_key


def _connections_of(spec: dict[str, Any]) -> set[str]:
    return {name for name in (spec["source"].get("connection"), spec["kafka"].get("cluster"),
                              spec["sink"].get("connection")) if name}
