"""CreateTopics / DeleteTopics: the pipeline's Kafka topics."""

from typing import Any

from lambdas.common import step_handler
from lambdas.kafka_topics import delete_topics, ensure_topics
from lambdas.spec import PipelineSpec


@step_handler
def create_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    return ensure_topics(spec)


@step_handler
def delete_handler(spec: PipelineSpec, event: dict[str, Any]) -> dict[str, Any]:
    return {"deleted": delete_topics(spec)}
