"""Batching settings that let a large initial copy move at the speed of its slowest part.

Measured with `bench/snapshot` (BENCHMARKS.md): with Connect's and
Debezium's defaults a 1,000,000-row snapshot ran at about 1,800 rows/s end
to end, with these at about 5,700. Each record carries its JSON schema, so a
row is 1-2 KB on the wire: larger producer batches and lz4 count. The
`producer.override.*` and `consumer.override.*` keys need a worker whose
`connector.client.config.override.policy` allows them (Kafka's default since
3.0, `All`).
"""

SOURCE_THROUGHPUT: dict[str, str] = {
    # Debezium hands the producer up to 16,384 records at a time (2,048) from a queue of 65,536 (8,192), bounded
    # in bytes so that many pipelines on one worker cannot exhaust its heap; the snapshot reads 20,000 rows per
    # round trip (10,240).
    "max.batch.size": "16384",
    "max.queue.size": "65536",
    "max.queue.size.in.bytes": str(128 * 1024 * 1024),
    "snapshot.fetch.size": "20000",
    # A backfill (incremental snapshot) reads 20,000 rows per chunk (1,024), each chunk a query and two
    # watermark writes to the signal table; its window of rows is held in memory until the chunk is sent.
    "incremental.snapshot.chunk.size": "20000",
    # 50 ms of linger fills 1 MiB batches during a copy and adds at most 50 ms to a lone change's latency.
    "producer.override.linger.ms": "50",
    "producer.override.batch.size": str(1024 * 1024),
    "producer.override.compression.type": "lz4",
}

JDBC_SINK_THROUGHPUT: dict[str, str] = {
    # One flush per 5,000 records (500), and polls large enough to fill it; no fetch.min.bytes, which would
    # hold a lone change back until the fetch wait expires.
    "batch.size": "5000",
    "consumer.override.max.poll.records": "5000",
    "consumer.override.max.partition.fetch.bytes": str(8 * 1024 * 1024),
}
