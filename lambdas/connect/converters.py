"""The record format both connectors of a pipeline agree on."""

# JSON with inline schemas: the Debezium JDBC sink needs each record's schema
# to map columns, and the pipeline must not depend on the worker's defaults.
JSON_WITH_SCHEMAS: dict[str, str] = {
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "true",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "true",
}

# cdcflow's JsonConverter (the cdcflow-exact-values plugin, beside the Debezium plugins on the workers): it reads
# the records JsonConverter wrote, and puts back what JsonConverter and Debezium's string decimals would change
# on the way to a database: double and real NaN and +-Infinity (JSON has no such numbers, and JsonConverter
# reads them back as 0.0), and numeric NaN and +-Infinity, spelled as PostgreSQL reads them.
EXACT_JSON_CONVERTER = "dev.cdcflow.connect.ExactJsonConverter"
EXACT_JSON_WITH_SCHEMAS: dict[str, str] = {
    **JSON_WITH_SCHEMAS,
    "key.converter": EXACT_JSON_CONVERTER,
    "value.converter": EXACT_JSON_CONVERTER,
}
