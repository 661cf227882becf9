"""The source PostgreSQL steps of ProvisionPipeline, each beside its compensation.

One module per resource: `logical_replication` (check wal_level),
`replication_user`, `heartbeat`, `publication`, `slot`, and `canary`
(the end-to-end check); `connection` opens the connections and names their
failures, `tables` holds the catalog lookups they share, `inventory` lists
what exists. Every `ensure_*` is idempotent and every `drop_*` is a no-op
when there is nothing to drop. These are plain functions over a psycopg
connection: the Lambda handlers in `lambdas.steps` call them.
"""
