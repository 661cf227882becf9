"""Where a database connection's TLS settings come from, and the local stack's certificates."""

import ipaddress
from dataclasses import dataclass

import pytest
from cryptography import x509

from cdcflow.local import tls as local_tls
from cdcflow.local.config import StackConfig
from lambdas.source.tls import DatabaseTls, DatabaseTlsMisconfigured, database_tls


@dataclass(frozen=True)
class Connection:
    """A registered connection carrying its own TLS settings."""

    sslmode: str | None = None
    ca_file: str | None = None
    connect_ca_file: str | None = None


def test_the_default_is_verify_full_against_the_system_cas():
    tls = database_tls(None, environ={})
    assert tls == DatabaseTls("verify-full", None, None)
    assert tls.libpq_parameters() == {"sslmode": "verify-full", "sslrootcert": "system"}
    assert tls.debezium_settings() == {"database.sslmode": "verify-full"}
    assert tls.jdbc_query() == "?sslmode=verify-full"


def test_the_environment_names_the_ca_on_each_host():
    environ = {"CDCFLOW_DATABASE_CA_FILE": "/opt/ca.pem", "CDCFLOW_CONNECT_DATABASE_CA_FILE": "/etc/kafka/db ca.pem"}
    tls = database_tls(object(), environ=environ)
    assert tls.libpq_parameters() == {"sslmode": "verify-full", "sslrootcert": "/opt/ca.pem"}
    assert tls.debezium_settings()["database.sslrootcert"] == "/etc/kafka/db ca.pem"
    assert tls.jdbc_query() == "?sslmode=verify-full&sslrootcert=/etc/kafka/db%20ca.pem"


def test_the_workers_use_the_functions_ca_path_unless_told_otherwise():
    tls = database_tls(None, environ={"CDCFLOW_DATABASE_CA_FILE": "/opt/ca.pem"})
    assert tls.connect_ca_file == "/opt/ca.pem"


def test_a_connections_own_settings_win_over_the_environment():
    environ = {"CDCFLOW_DATABASE_SSLMODE": "require", "CDCFLOW_DATABASE_CA_FILE": "/opt/ca.pem",
               "CDCFLOW_CONNECT_DATABASE_CA_FILE": "/etc/kafka/ca.pem"}
    tls = database_tls(Connection(sslmode="verify-ca", ca_file="/srv/rds-bundle.pem"), environ=environ)
    assert tls == DatabaseTls("verify-ca", "/srv/rds-bundle.pem", "/srv/rds-bundle.pem")


def test_an_unknown_sslmode_is_refused_naming_the_setting():
    with pytest.raises(DatabaseTlsMisconfigured, match="CDCFLOW_DATABASE_SSLMODE is 'verify'"):
        database_tls(None, environ={"CDCFLOW_DATABASE_SSLMODE": "verify"})


def test_no_root_certificate_is_named_when_nothing_is_verified():
    tls = database_tls(None, environ={"CDCFLOW_DATABASE_SSLMODE": "require", "CDCFLOW_DATABASE_CA_FILE": "/opt/ca.pem"})
    assert tls.libpq_parameters() == {"sslmode": "require"}
    assert "database.sslrootcert" not in tls.debezium_settings()


def _verifies(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001 - any failure means "not issued by this CA"
        return False
    return True


def test_the_server_certificate_is_for_the_loopback_address_and_signed_by_the_stacks_ca(tmp_path):
    config = StackConfig(state_dir=tmp_path)
    files = local_tls.ensure_server_certificate(config, tmp_path / "postgres" / "tls")

    ca = x509.load_pem_x509_certificate(config.ca_file.read_bytes())
    server = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert _verifies(server, ca)
    assert files.key.stat().st_mode & 0o777 == 0o600
    foreign = x509.load_pem_x509_certificate(local_tls.write_foreign_ca(tmp_path / "other.crt").read_bytes())
    assert not _verifies(server, foreign)


def test_certificates_are_kept_across_starts_and_reissued_for_a_new_ca(tmp_path):
    config = StackConfig(state_dir=tmp_path)
    folder = tmp_path / "postgres" / "tls"
    first = local_tls.ensure_server_certificate(config, folder).certificate.read_bytes()
    assert local_tls.ensure_server_certificate(config, folder).certificate.read_bytes() == first

    config.ca_file.unlink()  # a purged CA: clients will trust the new one, so the server needs a new certificate
    again = local_tls.ensure_server_certificate(config, folder).certificate.read_bytes()
    assert again != first
    assert _verifies(x509.load_pem_x509_certificate(again), x509.load_pem_x509_certificate(config.ca_file.read_bytes()))
