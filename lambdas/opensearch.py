"""An OpenSearch sink over its REST API: the canary by document id, the pipeline's indices.

cdcflow's OpenSearch sink connector (`cdcflow/local/opensearch_sink/`) writes each
topic to an index of the same name, one document per row whose `_id` is the row's
primary key and whose `_source` holds the row's columns. The canary is the
heartbeat table's row `canary-<token>`, so it has arrived once the heartbeat
topic's index holds a document of that id.

Credentials go only into the request's basic auth; messages name the URL
without any user or password written into it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from typing import Any

import requests

from lambdas.connect.credentials import DatabaseLogin
from lambdas.connect.sink_config import sink_topics
from lambdas.errors import StepError
from lambdas.spec import PipelineSpec

REQUEST_TIMEOUT_SECONDS = 10


class SinkUnavailable(StepError):
    """The OpenSearch sink did not answer, or answered with an error other than a missing index or document."""


def shown_url(url: str) -> str:
    """`url` without a user or password in it, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)).rstrip("/")


def _quote(index: str) -> str:
    return urllib.parse.quote(index, safe="")


def _request(method: str, url: str, path: str, login: DatabaseLogin | None, what: str, **kwargs: Any) -> requests.Response:
    auth = (login.username, login.password) if login is not None else None
    try:
        return requests.request(
            method, f"{url.rstrip('/')}{path}", auth=auth, timeout=REQUEST_TIMEOUT_SECONDS, **kwargs
        )
    except requests.RequestException as exc:
        raise SinkUnavailable(f"OpenSearch at {shown_url(url)} did not answer ({what}): {type(exc).__name__}") from None


# As cdcflow's connector creates a missing index: dynamic mapping, but no dates or numbers guessed
# inside strings, so a text column stays text whatever its first value looks like.
INDEX_MAPPINGS = {"dynamic": True, "date_detection": False, "numeric_detection": False}


def pipeline_indices(spec: PipelineSpec) -> list[str]:
    """The indices of an OpenSearch sink: one per topic it consumes, named as the topic."""
    return sink_topics(spec)


def ensure_indices(url: str, indices: Iterable[str], login: DatabaseLogin | None = None) -> list[str]:
    """Create each of `indices` that is missing, with `INDEX_MAPPINGS`; returns those created. Idempotent."""
    created = []
    for index in indices:
        response = _request("PUT", url, f"/{_quote(index)}", login, f"creating index {index}",
                            json={"mappings": INDEX_MAPPINGS})
        if response.ok:
            created.append(index)
        elif not (response.status_code == 400 and "resource_already_exists_exception" in response.text):
            raise SinkUnavailable(
                f"OpenSearch at {shown_url(url)} answered {response.status_code} when asked to create index {index}"
            )
    return created


def document_with_id_exists(url: str, index: str, row_id: str, login: DatabaseLogin | None = None) -> bool:
    """Whether index `index` at `url` holds the document whose `_id` is `row_id`. Read-only.

    An index that does not exist yet (the connector creates it before its
    first write) means "not yet", as does a missing document. A real-time
    GET: the document is found as soon as it is written, before a refresh.
    """
    response = _request(
        "GET", url, f"/{_quote(index)}/_doc/{_quote(row_id)}", login, f"looking up document {row_id}",
        params={"_source": "false"},
    )
    if response.status_code == 404:
        return False
    if not response.ok:
        raise SinkUnavailable(
            f"OpenSearch at {shown_url(url)} answered {response.status_code} to a lookup of document {row_id} "
            f"in index {index}"
        )
    return bool(response.json().get("found"))


def existing_indices(url: str, indices: Iterable[str], login: DatabaseLogin | None = None) -> set[str]:
    """Which of `indices` exist at `url`. Read-only; raises SinkUnavailable when OpenSearch does not answer."""
    found = set()
    for index in indices:
        response = _request("HEAD", url, f"/{_quote(index)}", login, f"checking index {index}")
        if response.status_code == 200:
            found.add(index)
        elif response.status_code != 404:
            raise SinkUnavailable(
                f"OpenSearch at {shown_url(url)} answered {response.status_code} when asked for index {index}"
            )
    return found


def delete_indices(url: str, indices: Iterable[str], login: DatabaseLogin | None = None) -> list[str]:
    """Delete `indices` at `url`; returns those that existed. Idempotent: a missing index is not an error.

    Run after the sink connector is gone, or it creates the index again with its next write.
    """
    deleted = []
    for index in indices:
        response = _request("DELETE", url, f"/{_quote(index)}", login, f"deleting index {index}")
        if response.ok:
            deleted.append(index)
        elif response.status_code != 404:
            raise SinkUnavailable(
                f"OpenSearch at {shown_url(url)} answered {response.status_code} when asked to delete index {index}"
            )
    return deleted


def cluster_health(url: str, login: DatabaseLogin | None = None) -> str:
    """The cluster's health status (green, yellow or red); raises SinkUnavailable when it does not answer."""
    response = _request("GET", url, "/_cluster/health", login, "cluster health")
    if not response.ok:
        raise SinkUnavailable(f"OpenSearch at {shown_url(url)} answered {response.status_code} to a health check")
    return str(response.json().get("status"))


def document_count(url: str, index: str, login: DatabaseLogin | None = None) -> int:
    """How many documents index `index` holds after a refresh (0 when it does not exist yet). Read-only."""
    _request("POST", url, f"/{_quote(index)}/_refresh", login, f"refreshing index {index}")
    response = _request("GET", url, f"/{_quote(index)}/_count", login, f"counting index {index}")
    if response.status_code == 404:
        return 0
    if not response.ok:
        raise SinkUnavailable(f"OpenSearch at {shown_url(url)} answered {response.status_code} to a count of "
                              f"index {index}")
    return int(response.json().get("count", 0))
