"""docs/openapi.yaml describes the API the handler serves: same routes, same spec schema, a valid document."""

import json
import re
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from cdcflow.api_server import RESOURCES
from lambdas import api, registry
from lambdas import connections, pipeline_request

pytestmark = pytest.mark.unit

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture(scope="module")
def document():
    return yaml.safe_load(OPENAPI_PATH.read_text())


def _template(path: str) -> str:
    """`/pipelines/<pipeline_id>` and `/pipelines/{id}` both become `/pipelines/{}`."""
    return re.sub(r"<\w+>|\{\w+\}", "{}", path)


def test_the_document_is_valid_openapi(document):
    validate(document)


def test_the_resolver_and_the_document_have_the_same_routes(document):
    resolver_routes = {(route.method.upper(), _template(route.path))
                       for route in api.app._static_routes + api.app._dynamic_routes}
    documented_routes = {(method.upper(), _template(path))
                         for path, item in document["paths"].items() for method in item if method in HTTP_METHODS}

    assert resolver_routes == documented_routes
    assert len(resolver_routes) == 14


def test_the_local_server_knows_the_documented_resources_and_methods(document):
    assert set(RESOURCES) == set(document["paths"])
    documented = {path: {method.upper() for method in item if method in HTTP_METHODS}
                  for path, item in document["paths"].items()}
    assert {resource: set(methods) for resource, methods in api.RESOURCE_METHODS.items()} == documented


@pytest.mark.parametrize(("component", "schema_path"), [
    ("PipelineSpec", pipeline_request.SCHEMA_PATH), ("Connection", connections.SCHEMA_PATH),
])
def test_the_embedded_schemas_are_the_request_and_connection_schemas(document, component, schema_path):
    """The embedded copies differ only in where their `$defs` references point."""
    schema = json.loads(schema_path.read_text())
    del schema["$schema"], schema["$id"]
    as_embedded = json.loads(json.dumps(schema).replace('"#/$defs/', f'"#/components/schemas/{component}/$defs/'))

    assert document["components"]["schemas"][component] == as_embedded


def test_every_operation_documents_its_failures(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            codes = set(operation["responses"])
            assert {"500", "503"} <= codes, f"{method} {path}"
            assert "403" in codes, f"{method} {path}"
            if "{" in path:
                assert "404" in codes, f"{method} {path}"
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= codes, f"{method} {path}"


def test_the_documented_statuses_are_the_registrys(document):
    assert document["components"]["schemas"]["PipelineStatus"]["enum"] == [s.value for s in registry.PipelineStatus]
