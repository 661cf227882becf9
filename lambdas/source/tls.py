"""The TLS settings of the connections to the source and sink databases.

Every connection is `verify-full` unless the platform says otherwise: the
server's certificate must chain to the configured CA and name the host the
step connects to. The same settings reach the three clients that connect:
the steps (libpq through psycopg), Debezium (`database.sslmode`,
`database.sslrootcert`) and the JDBC sink (`sslmode` and `sslrootcert` in the
connection URL).

Where the settings come from, first match wins:

1. the endpoint's own `sslmode` and `ca_file` fields, when the registered
   connection carries them (a per-connection override; read with `getattr`
   so an endpoint without them falls through);
2. the functions' environment: `CDCFLOW_DATABASE_SSLMODE` (default
   `verify-full`), `CDCFLOW_DATABASE_CA_FILE` (the CA bundle on the host the
   steps run on) and `CDCFLOW_CONNECT_DATABASE_CA_FILE` (the same bundle's
   path on the Kafka Connect workers; default: the steps' path, which is
   right when both run on one host, as on the local stack).

Without a CA file, libpq checks the server against the system's trusted CAs
(`sslrootcert=system`) and the JDBC driver against its default root file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from lambdas.errors import StepError

SSLMODE_VARIABLE = "CDCFLOW_DATABASE_SSLMODE"
CA_FILE_VARIABLE = "CDCFLOW_DATABASE_CA_FILE"
CONNECT_CA_FILE_VARIABLE = "CDCFLOW_CONNECT_DATABASE_CA_FILE"
DEFAULT_SSLMODE = "verify-full"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class DatabaseTlsMisconfigured(StepError):
    """The TLS settings of a database connection are not usable (an unknown sslmode)."""


@dataclass(frozen=True)
class DatabaseTls:
    """How one database connection uses TLS: the libpq `sslmode` and the CA bundle on each host."""

    sslmode: str = DEFAULT_SSLMODE
    ca_file: str | None = None
    connect_ca_file: str | None = None

    @property
    def verifies(self) -> bool:
        """Whether the server's certificate is checked against a CA (verify-ca, verify-full)."""
        return self.sslmode.startswith("verify-")

    def libpq_parameters(self) -> dict[str, str]:
        """The conninfo parameters for psycopg (`sslmode`, `sslrootcert`)."""
        parameters = {"sslmode": self.sslmode}
        if self.verifies:
            parameters["sslrootcert"] = self.ca_file or "system"
        return parameters

    def debezium_settings(self) -> dict[str, str]:
        """Debezium's `database.sslmode` and, when verifying with a CA file, `database.sslrootcert`."""
        settings = {"database.sslmode": self.sslmode}
        if self.verifies and self.connect_ca_file:
            settings["database.sslrootcert"] = self.connect_ca_file
        return settings

    def jdbc_query(self) -> str:
        """The query string of a PostgreSQL JDBC URL: `?sslmode=...&sslrootcert=...`."""
        query = f"?sslmode={self.sslmode}"
        if self.verifies and self.connect_ca_file:
            query += f"&sslrootcert={quote(self.connect_ca_file, safe='/')}"
        return query


def database_tls(endpoint: Any = None, environ: Mapping[str, str] = os.environ) -> DatabaseTls:
    """The TLS settings for a connection to `endpoint` (a source or sink spec or connection; may be None).

    Raises `DatabaseTlsMisconfigured` naming the setting when the sslmode is not one libpq knows.
    """
    sslmode = getattr(endpoint, "sslmode", None) or environ.get(SSLMODE_VARIABLE) or DEFAULT_SSLMODE
    if sslmode not in SSLMODES:
        where = "the connection's sslmode" if getattr(endpoint, "sslmode", None) else SSLMODE_VARIABLE
        raise DatabaseTlsMisconfigured(f"{where} is {sslmode!r}, not one of {', '.join(SSLMODES)}")
    own_ca_file = getattr(endpoint, "ca_file", None)
    if own_ca_file:
        # A connection's own CA is the same bundle on both hosts unless it says where the workers keep it.
        return DatabaseTls(sslmode, own_ca_file, getattr(endpoint, "connect_ca_file", None) or own_ca_file)
    ca_file = environ.get(CA_FILE_VARIABLE) or None
    return DatabaseTls(sslmode, ca_file, environ.get(CONNECT_CA_FILE_VARIABLE) or ca_file)
