"""The code the Lambda functions run, laid out as the architecture reads.

Handlers (thin: parse the event, call a plain function, return JSON):

- `steps`: one module per task state of the workflows, named after it;
- `api`: the pipelines REST API, one `Router` module per group of routes;
- `reconcile`: the scheduled sweep of every registered pipeline.

The plain modules they call, which the tests call directly:

- `source`, `rds`: the source PostgreSQL database and its RDS instance;
- `connect`, `kafka_topics`, `opensearch`: Kafka Connect, Kafka and the sinks;
- `registry`, `secrets`, `executions`: the pipeline registry (DynamoDB),
  credentials (Secrets Manager) and workflow executions (Step Functions);
- `spec`, `naming`, `errors`, `wait_loop`: the pipeline spec, every name
  derived from it, the errors the state machines route on, and the rules of
  the wait-loops;
- `common`, `aws`: what every function shares (the step handler, logging,
  idempotency, redaction) and the boto3 clients.

Nothing here serves only the local stack: that lives in `cdcflow.local`.
"""
