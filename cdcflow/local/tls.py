"""The local stack's certificate authority and the PostgreSQL server certificate it signs.

`up` creates the CA once per state folder (its key stays in the 0700
`secrets/` folder) and a server certificate for `127.0.0.1` and `localhost`,
issued again when it is missing, expires within `RENEW_BEFORE`, or was signed
by another CA. Clients verify the server with `ca_file(config)`: psycopg and
the JDBC driver with `sslmode=verify-full`, Debezium with
`database.sslmode=verify-full`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cdcflow.local.config import LOOPBACK, StackConfig

CA_NAME = "cdcflow local stack CA"
SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = (LOOPBACK,)
CA_LIFETIME = datetime.timedelta(days=3650)
SERVER_LIFETIME = datetime.timedelta(days=397)
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class ServerCertificate:
    """PEM files of a server's certificate and key."""

    certificate: Path
    key: Path


def ca_file(config: StackConfig) -> Path:
    return config.ca_file


def _ca_key_file(config: StackConfig) -> Path:
    return config.state_dir / "secrets" / "tls-ca.key"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def issue_ca(name: str = CA_NAME) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new self-signed CA certificate and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def issue_server_certificate(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: tuple[str, ...] = SERVER_NAMES,
    addresses: tuple[str, ...] = SERVER_ADDRESSES,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate signed by `ca` for the DNS `names` and IP `addresses`, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    alternative_names = [x509.DNSName(name) for name in names] + [
        x509.IPAddress(ipaddress.ip_address(address)) for address in addresses
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or addresses)[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_LIFETIME, ca.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def ensure_ca(config: StackConfig) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The stack's CA, created on first use. Idempotent: an existing CA is kept, so clients keep trusting it."""
    cert_path, key_path = ca_file(config), _ca_key_file(config)
    if cert_path.exists() and key_path.exists():
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if certificate.not_valid_after_utc - RENEW_BEFORE > _now():
            return certificate, key  # type: ignore[return-value]
    certificate, key = issue_ca()
    _write_private(key_path, _key_pem(key))
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    cert_path.chmod(0o644)
    return certificate, key


def _still_good(path: Path, ca: x509.Certificate) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return False
    return certificate.issuer == ca.subject and certificate.not_valid_after_utc - RENEW_BEFORE > _now() and (
        certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        == x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest
    )


def ensure_server_certificate(
    config: StackConfig, folder: Path, owner: tuple[int, int] | None = None
) -> ServerCertificate:
    """`server.crt` and `server.key` in `folder`, signed by the stack's CA; issued again only when needed.

    The key is 0600 and, with `owner` (uid, gid), owned by the server's OS user, as PostgreSQL requires.
    """
    ca, ca_key = ensure_ca(config)
    files = ServerCertificate(folder / "server.crt", folder / "server.key")
    if not (_still_good(files.certificate, ca) and files.key.exists()):
        certificate, key = issue_server_certificate(ca, ca_key)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(_key_pem(key))
        files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    if owner is not None:
        for path in (files.certificate, files.key):
            os.chown(path, *owner)
    files.key.chmod(0o600)
    return files


def write_foreign_ca(path: Path) -> Path:
    """A CA certificate that did not sign the stack's server certificate (what a client with the wrong CA trusts)."""
    certificate, _key = issue_ca("a CA that signed nothing of the local stack")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path
