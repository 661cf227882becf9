"""Kafka Connect: the REST client, the source and sink connector configs, deployment and readiness."""
