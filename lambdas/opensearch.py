"""Looking for the canary in an OpenSearch sink, over its REST API.

The OpenSearch sink connector writes each topic to an index of the same name,
one document per row, whose fields are the row's columns. The canary is the
heartbeat table's row `canary-<token>`, so it has arrived once a document of
the heartbeat topic's index has that `id`.

Not verified end to end here: the local stack runs no OpenSearch. The query
is the search API's `_count` with a `term` query, which OpenSearch and
Elasticsearch answer alike.
"""

from __future__ import annotations

import requests

from lambdas.connect.credentials import DatabaseLogin
from lambdas.errors import StepError

REQUEST_TIMEOUT_SECONDS = 10


class SinkUnavailable(StepError):
    """The OpenSearch sink did not answer, or answered with an error other than a missing index."""


def document_with_id_exists(url: str, index: str, row_id: str, login: DatabaseLogin | None = None) -> bool:
    """Whether index `index` at `url` holds a document whose `id` field is `row_id`. Read-only.

    An index that does not exist yet (the connector creates it with the first
    event) means "not yet". `id` is matched both as a keyword field and as
    the `.keyword` sub-field dynamic mapping gives a string.
    """
    query = {
        "query": {
            "bool": {
                "should": [{"term": {"id": row_id}}, {"term": {"id.keyword": row_id}}],
                "minimum_should_match": 1,
            }
        }
    }
    where = f"{url.rstrip('/')}/{requests.utils.quote(index, safe='')}/_count"
    auth = (login.username, login.password) if login is not None else None
    try:
        response = requests.post(where, json=query, auth=auth, timeout=REQUEST_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        raise SinkUnavailable(f"OpenSearch at {url} did not answer: {type(exc).__name__}") from None
    if response.status_code == 404:
        return False
    if not response.ok:
        raise SinkUnavailable(f"OpenSearch at {url} answered {response.status_code} to a count on index {index}")
    return response.json().get("count", 0) > 0
