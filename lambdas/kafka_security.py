"""How cdcflow's Kafka clients authenticate to a cluster: PLAINTEXT, SSL, or SASL_SSL with SCRAM or MSK IAM.

`kafka_security(cluster)` reads the settings of a Kafka cluster connection by
attribute, so a cluster that names none of them stays PLAINTEXT:

- `security_protocol`: PLAINTEXT (default), SSL or SASL_SSL;
- `sasl_mechanism`: SCRAM-SHA-512 (default with SASL_SSL), SCRAM-SHA-256, or AWS_MSK_IAM (Amazon MSK's IAM
  access control: the function's own role signs the login, so no secret exists to leak or rotate);
- `secret`: with SCRAM, the Secrets Manager secret with the login (`username`, `password`);
- `ca_file`: the CA bundle the broker's certificate must chain to (default:
  `CDCFLOW_KAFKA_CA_FILE`, else the system's CAs). The host name is checked too.

`admin_client_options` turns them into kafka-python options, reading the
secret at the moment the client is built (the password is remembered for
redaction and never returned in a step's result). With AWS_MSK_IAM,
kafka-python's own mechanism signs the login with the credentials and region
botocore finds (on Lambda, the function's role and `AWS_DEFAULT_REGION`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lambdas.errors import StepError
from lambdas.secrets import read_credentials

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")
MSK_IAM = "AWS_MSK_IAM"
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", MSK_IAM)
CA_FILE_VARIABLE = "CDCFLOW_KAFKA_CA_FILE"


class KafkaSecurityMisconfigured(StepError):
    """A Kafka cluster's security settings are incomplete or unknown (names the setting)."""


class KafkaAuthenticationFailed(StepError):
    """The Kafka cluster refused the SASL login (names the bootstrap servers, mechanism and user)."""


class KafkaTlsRejected(StepError):
    """The TLS handshake with a broker failed: its certificate is not from the CA or names another host."""


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    secret: str | None = None
    ca_file: str | None = None

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol == "SASL_SSL"


def kafka_security(cluster: Any = None, environ: Mapping[str, str] = os.environ) -> KafkaSecurity:
    """The security settings of `cluster` (a Kafka cluster spec or connection; may be None).

    Raises `KafkaSecurityMisconfigured` naming the setting that is unknown or missing.
    """
    protocol = (getattr(cluster, "security_protocol", None) or "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise KafkaSecurityMisconfigured(f"security_protocol is {protocol!r}, not one of {', '.join(PROTOCOLS)}")
    if protocol == "PLAINTEXT":
        return KafkaSecurity()
    ca_file = getattr(cluster, "ca_file", None) or environ.get(CA_FILE_VARIABLE) or None
    if protocol == "SSL":
        return KafkaSecurity(protocol, ca_file=ca_file)
    mechanism = (getattr(cluster, "sasl_mechanism", None) or SASL_MECHANISMS[0]).upper()
    if mechanism not in SASL_MECHANISMS:
        raise KafkaSecurityMisconfigured(f"sasl_mechanism is {mechanism!r}, not one of {', '.join(SASL_MECHANISMS)}")
    secret = getattr(cluster, "secret", None)
    if mechanism == MSK_IAM:
        if secret:
            raise KafkaSecurityMisconfigured(f"sasl_mechanism {MSK_IAM} signs with the function's role: "
                                             "a secret would never be read, so none may be named")
        return KafkaSecurity(protocol, mechanism, None, ca_file)
    if not secret:
        raise KafkaSecurityMisconfigured("security_protocol SASL_SSL needs the secret that holds the SCRAM login")
    return KafkaSecurity(protocol, mechanism, secret, ca_file)


def admin_client_options(security: KafkaSecurity) -> dict[str, Any]:
    """kafka-python client options for `security`; reads the SCRAM secret (raises the `lambdas.secrets` errors)."""
    if not security.uses_tls:
        return {}
    options: dict[str, Any] = {"security_protocol": security.protocol, "ssl_check_hostname": True}
    if security.ca_file:
        options["ssl_cafile"] = security.ca_file
    if security.sasl_mechanism == MSK_IAM:
        options["sasl_mechanism"] = MSK_IAM
    elif security.uses_sasl and security.secret:
        login = read_credentials(security.secret)
        options.update(sasl_mechanism=security.sasl_mechanism, sasl_plain_username=login.username,
                       sasl_plain_password=login.password)
    return options


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def connection_failures() -> Iterator[list[str]]:
    """The warnings kafka-python logs while the block runs.

    kafka-python retries a refused SASL login or TLS handshake until its
    bootstrap timeout and then raises a bare timeout; the reason is only in
    what it logged, which `classify_failure` reads.
    """
    recorder = _Recorder()
    logger = logging.getLogger("kafka")
    logger.addHandler(recorder)
    try:
        yield recorder.messages
    finally:
        logger.removeHandler(recorder)


def classify_failure(
    error: BaseException, bootstrap_servers: str, security: KafkaSecurity, logged: list[str] | None = None
) -> StepError | None:
    """The named error for a refused login or TLS handshake, or None when `error` (and what was logged) is neither."""
    reasons = [f"{type(error).__name__}: {error}", *(logged or [])]
    sasl = next((r for r in reasons if "saslauthenticationfailed" in r.lower().replace(" ", "")), None)
    if sasl is not None:
        error = sasl.rsplit(": ", 1)[-1]  # the broker's own words, without kafka-python's connection prefix
    tls_fragments = ("certificate verify failed", "certificate_verify_failed", "hostname mismatch")
    tls = next((r for r in reasons if any(fragment in r.lower() for fragment in tls_fragments)), None)
    if tls is not None and sasl is None:
        error = tls.split("Handshake failed: ", 1)[-1]
    lowered = " ".join(reasons).lower()
    if sasl is not None or "sasl authentication failed" in lowered:
        user = f" as {security.secret!r}'s user" if security.secret else ""
        return KafkaAuthenticationFailed(
            f"Kafka at {bootstrap_servers} refused the {security.sasl_mechanism} login{user}: {error}"
        )
    if security.uses_tls and tls is not None:
        ca = security.ca_file or "the system's CAs"
        return KafkaTlsRejected(f"TLS to Kafka at {bootstrap_servers} was rejected (CA {ca}): {error}")
    return None
