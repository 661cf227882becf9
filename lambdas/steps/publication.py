"""CreatePublication / DropPublication: the publication of exactly the captured tables."""

from typing import Any

from lambdas.common import step_handler
from lambdas.source.connection import connect_admin
from lambdas.source.publication import drop_publication, ensure_publication
from lambdas.spec import PipelineSpec


@step_handler
def create_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with connect_admin(spec.source) as conn:
        return ensure_publication(conn, spec)


@step_handler
def drop_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    with connect_admin(spec.source) as conn:
        return {"dropped": drop_publication(conn, spec)}
