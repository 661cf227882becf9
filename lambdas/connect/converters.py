"""The record format both connectors of a pipeline agree on."""

# JSON with inline schemas: the Debezium JDBC sink needs each record's schema
# to map columns, and the pipeline must not depend on the worker's defaults.
JSON_WITH_SCHEMAS: dict[str, str] = {
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "true",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "true",
}
