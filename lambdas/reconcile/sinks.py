"""The sink side of a pipeline, beyond its connector: an OpenSearch sink's indices.

A JDBC sink's tables are the sink connector's to create, and their absence
shows as a failed task; an OpenSearch sink's indices are created with the
pipeline, so one that is missing (deleted by hand, say) is drift worth a
DEGRADED status: the connector would silently create it again without the
documents it held.
"""

from __future__ import annotations

from lambdas.connect.credentials import login_from_secret
from lambdas.opensearch import existing_indices, pipeline_indices
from lambdas.spec import PipelineSpec


def missing_sink_indices(spec: PipelineSpec) -> list[str]:
    """The pipeline's OpenSearch indices that do not exist; [] for other sinks. Read-only.

    Raises `SinkUnavailable` when OpenSearch does not answer (or refuses), and
    the secret errors of `lambdas.secrets` when the sink's login cannot be read.
    """
    if spec.sink.type != "opensearch":
        return []
    login = login_from_secret(spec.sink.secret) if spec.sink.secret else None
    indices = pipeline_indices(spec)
    found = existing_indices(spec.sink.url, indices, login)
    return [index for index in indices if index not in found]
