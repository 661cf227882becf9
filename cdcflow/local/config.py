"""Where the local stack keeps its state, which ports it uses, and how to reach it.

Everything lives under `<repo>/.cdcflow/` (git ignores it) unless a `StackConfig`
says otherwise; the benchmark uses that to run a second stack beside the first.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import psycopg.conninfo

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_ROOT / ".cdcflow"
LOOPBACK = "127.0.0.1"
AWS_REGION = "us-east-1"
SOURCE_ADMIN_SECRET = "cdcflow-local/source-admin"
SINK_ADMIN_SECRET = "cdcflow-local/sink-admin"
# Neither DynamoDB Local nor moto checks credentials, but DynamoDB Local accepts only letters and digits.
DUMMY_ACCESS_KEY_ID = "cdcflowlocal"
DUMMY_SECRET_ACCESS_KEY = "cdcflowlocal"


@dataclass(frozen=True)
class Ports:
    """TCP ports on 127.0.0.1, one per listener."""

    postgres: int = 55432
    kafka: int = 9092
    kafka_controller: int = 9093
    # The broker's second listener: SASL_SSL with SCRAM-SHA-512, its certificate from the stack's CA.
    kafka_sasl: int = 9094
    connect: int = 8083
    dynamodb: int = 8000
    moto: int = 5000
    engine: int = 8600
    api: int = 8700
    opensearch: int = 9200
    opensearch_transport: int = 9300


@dataclass(frozen=True)
class StackConfig:
    """The ports and folders of one local stack."""

    state_dir: Path = DEFAULT_STATE_DIR
    ports: Ports = field(default_factory=Ports)
    # None: Maven's own default (~/.m2/repository).
    maven_repo: Path | None = None

    @property
    def jars_dir(self) -> Path:
        return self.state_dir / "jars"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def credentials_file(self) -> Path:
        """The local users' AWS shared-credentials file (`cdcflow.local.credentials`)."""
        return self.state_dir / "credentials"

    @property
    def run_dir(self) -> Path:
        """Pid files and the stack's lock."""
        return self.state_dir / "run"

    @property
    def ca_file(self) -> Path:
        """The certificate of the stack's own CA, which signs the PostgreSQL server's (`cdcflow.local.tls`)."""
        return self.state_dir / "tls" / "ca.crt"

    def service_dir(self, service: str) -> Path:
        """The data and configuration of one service."""
        return self.state_dir / service

    def log_path(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"


def config_from_env(environ: Mapping[str, str] = os.environ) -> StackConfig:
    """The default config, with `CDCFLOW_LOCAL_STATE_DIR` and `CDCFLOW_LOCAL_<LISTENER>_PORT` applied.

    Raises ValueError naming the variable when a port is not a number in 1..65535.
    """
    ports = {}
    for port_field in fields(Ports):
        name = f"CDCFLOW_LOCAL_{port_field.name.upper()}_PORT"
        if name in environ:
            value = environ[name]
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise ValueError(f"{name}={value!r} is not a TCP port (1-65535)")
            ports[port_field.name] = int(value)
    config = StackConfig(ports=replace(Ports(), **ports))
    if state_dir := environ.get("CDCFLOW_LOCAL_STATE_DIR"):
        config = replace(config, state_dir=Path(state_dir).resolve())
    return config


@dataclass(frozen=True)
class PostgresEndpoint:
    """The local PostgreSQL server, its admin superuser, and the source and sink databases.

    The server takes TLS logins only; `ca_file` is the CA its certificate verifies against.
    """

    host: str
    port: int
    admin_user: str
    admin_password: str = field(repr=False)
    source_database: str = "source"
    sink_database: str = "sink"
    ca_file: str | None = None

    def dsn(self, database: str) -> str:
        """A libpq connection string for `database` as the admin user (it holds the password), verify-full TLS."""
        tls = {"sslmode": "verify-full", "sslrootcert": self.ca_file} if self.ca_file else {}
        return psycopg.conninfo.make_conninfo(
            host=self.host, port=self.port, dbname=database, user=self.admin_user, password=self.admin_password, **tls
        )

    def source_dsn(self) -> str:
        return self.dsn(self.source_database)

    def sink_dsn(self) -> str:
        return self.dsn(self.sink_database)


KAFKA_SCRAM_SECRET = "cdcflow-local/kafka-scram"


@dataclass(frozen=True)
class KafkaEndpoint:
    """The broker's PLAINTEXT listener, and its SASL_SSL one (SCRAM login in secret `scram_secret`)."""

    bootstrap_servers: str
    sasl_ssl_bootstrap_servers: str | None = None
    scram_secret: str | None = None


@dataclass(frozen=True)
class ConnectEndpoint:
    url: str


@dataclass(frozen=True)
class OpenSearchEndpoint:
    """The REST API of the local OpenSearch, which runs only when `up` was asked for it."""

    url: str


@dataclass(frozen=True)
class DynamoDBEndpoint:
    url: str


@dataclass(frozen=True)
class AwsEndpoint:
    """The moto server that stands in for Secrets Manager, RDS and CloudWatch."""

    url: str
    region: str
    source_admin_secret: str
    sink_admin_secret: str


@dataclass(frozen=True)
class EngineEndpoint:
    """The local Step Functions engine: pass `url` as boto3's `endpoint_url` (or the AWS CLI's `--endpoint-url`)."""

    url: str


@dataclass(frozen=True)
class ApiEndpoint:
    """The local pipelines API (the same handler API Gateway runs).

    It takes only requests signed (SigV4, service `execute-api`) with a
    profile of `credentials_file`, the local users' shared-credentials file.
    """

    url: str
    credentials_file: Path | None = None


@dataclass(frozen=True)
class Endpoints:
    """How to reach every service of a running local stack."""

    postgres: PostgresEndpoint
    kafka: KafkaEndpoint
    connect: ConnectEndpoint
    dynamodb: DynamoDBEndpoint
    aws: AwsEndpoint
    engine: EngineEndpoint
    api: ApiEndpoint
    opensearch: OpenSearchEndpoint | None = None


def endpoints_for(config: StackConfig, admin_user: str, admin_password: str) -> Endpoints:
    ports = config.ports
    return Endpoints(
        postgres=PostgresEndpoint(LOOPBACK, ports.postgres, admin_user, admin_password, ca_file=str(config.ca_file)),
        kafka=KafkaEndpoint(f"{LOOPBACK}:{ports.kafka}", f"{LOOPBACK}:{ports.kafka_sasl}", KAFKA_SCRAM_SECRET),
        connect=ConnectEndpoint(f"http://{LOOPBACK}:{ports.connect}"),
        dynamodb=DynamoDBEndpoint(f"http://{LOOPBACK}:{ports.dynamodb}"),
        aws=AwsEndpoint(f"http://{LOOPBACK}:{ports.moto}", AWS_REGION, SOURCE_ADMIN_SECRET, SINK_ADMIN_SECRET),
        engine=EngineEndpoint(f"http://{LOOPBACK}:{ports.engine}"),
        api=ApiEndpoint(f"http://{LOOPBACK}:{ports.api}", config.credentials_file),
        opensearch=OpenSearchEndpoint(f"http://{LOOPBACK}:{ports.opensearch}"),
    )


def aws_environment(endpoints: Endpoints) -> dict[str, str]:
    """Environment variables that point boto3 (and the AWS CLI) at the local AWS endpoints.

    boto3 reads the service-specific `AWS_ENDPOINT_URL_<SERVICE>` variables itself, so a
    process started with these talks to DynamoDB Local and moto without code changes.
    The credentials are dummies. `CDCFLOW_DATABASE_CA_FILE` is the CA the functions
    (and, on this one machine, the Connect worker) verify PostgreSQL's certificate
    against (`lambdas.source.tls`).
    """
    database_tls = {"CDCFLOW_DATABASE_CA_FILE": endpoints.postgres.ca_file} if endpoints.postgres.ca_file else {}
    return {
        **database_tls,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoints.dynamodb.url,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoints.aws.url,
        "AWS_ENDPOINT_URL_RDS": endpoints.aws.url,
        "AWS_ENDPOINT_URL_CLOUDWATCH": endpoints.aws.url,
        "AWS_DEFAULT_REGION": endpoints.aws.region,
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
    }
