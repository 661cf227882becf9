"""The local stack's IAM users: an AWS shared-credentials file and the principals it stands for.

On AWS, callers sign API requests with their IAM credentials and API Gateway
checks the signature. Locally, `cdcflow local up` creates (once, kept across
restarts) a shared-credentials file in the stack's state folder
(`StackConfig.credentials_file`, `<state dir>/credentials`), mode 0600,
with one profile per local user:

| profile | principal | teams | roles |
| --- | --- | --- | --- |
| `cdcflow-admin` | `arn:aws:iam::000000000000:user/cdcflow-admin` | | admin |
| `cdcflow-orders-requester` | `...:user/cdcflow-orders-requester` | team-orders | requester |
| `cdcflow-orders-approver` | `...:user/cdcflow-orders-approver` | team-orders | approver |
| `cdcflow-payments-requester` | `...:user/cdcflow-payments-requester` | team-payments | requester |
| `cdcflow-payments-approver` | `...:user/cdcflow-payments-approver` | team-payments | approver |

The file is the store of these secrets, as `~/.aws/credentials` is of a
developer's: the local API reads it to verify signatures, the CLI and the
AWS tools read it to sign (`AWS_SHARED_CREDENTIALS_FILE=<file>
AWS_PROFILE=cdcflow-orders-requester`). Nothing logs or prints the secrets.
A profile added to the file by hand is a local user too
(`arn:aws:iam::000000000000:user/<profile>`), with no team or role until the
principals table gives it some.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import io
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from statemachines.catalogue import LOCAL_ACCOUNT

ADMIN_PROFILE = "cdcflow-admin"
# profile -> (teams, roles) registered in the principals table by `up`.
PROFILES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ADMIN_PROFILE: ((), ("admin",)),
    "cdcflow-orders-requester": (("team-orders",), ("requester",)),
    "cdcflow-orders-approver": (("team-orders",), ("approver",)),
    "cdcflow-payments-requester": (("team-payments",), ("requester",)),
    "cdcflow-payments-approver": (("team-payments",), ("approver",)),
}
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class CredentialsFileInvalid(Exception):
    """The local credentials file cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class LocalCredential:
    """One local IAM user: its profile, access key and secret (never shown by repr)."""

    profile: str
    access_key_id: str
    secret_access_key: str = field(repr=False)

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{LOCAL_ACCOUNT}:user/{self.profile}"

    @property
    def user_id(self) -> str:
        """The user's unique id as IAM gives one (`AIDA...`), stable for the profile."""
        digest = base64.b32encode(hashlib.sha256(self.arn.encode()).digest()).decode()
        return "AIDA" + digest[:17]


def new_credential(profile: str) -> LocalCredential:
    """A fresh random access key id (`AKIA` + 16 characters) and 40-character secret for `profile`."""
    key_id = "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    secret = base64.b64encode(secrets.token_bytes(30)).decode("ascii")
    return LocalCredential(profile, key_id, secret)


def _render(credentials: Iterable[LocalCredential]) -> str:
    lines = ["# cdcflow's local users (cdcflow/local/credentials.py). Keep this file private (mode 0600).\n"]
    for credential in credentials:
        lines.append(f"\n[{credential.profile}]\n")
        lines.append(f"aws_access_key_id = {credential.access_key_id}\n")
        lines.append(f"aws_secret_access_key = {credential.secret_access_key}\n")
    return "".join(lines)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, the file readable by its owner only from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def parse_credentials(text: str, source: str = "the credentials file") -> dict[str, LocalCredential]:
    """The profiles of a shared-credentials file that carry an access key id and a secret, by profile."""
    parser = configparser.ConfigParser(interpolation=None, default_section="__no_default__")
    try:
        parser.read_file(io.StringIO(text), source=source)
    except configparser.Error as error:
        raise CredentialsFileInvalid(f"{source} is not a shared-credentials file: {type(error).__name__}") from None
    found = {}
    for profile in parser.sections():
        section = parser[profile]
        key_id, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
        if key_id and secret:
            found[profile] = LocalCredential(profile, key_id.strip(), secret.strip())
    return found


def read_credentials(path: Path) -> dict[str, LocalCredential]:
    """The profiles of the credentials file at `path`; {} when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse_credentials(text, str(path))


def ensure_credentials(path: Path) -> dict[str, LocalCredential]:
    """The local users' credentials, creating the file (mode 0600) or its missing profiles first.

    Idempotent: existing keys are kept, so a restarted stack signs and
    verifies with the same ones; a file left readable by others is made
    private again.
    """
    existing = read_credentials(path)
    missing = [profile for profile in PROFILES if profile not in existing]
    if missing:
        everything = {**existing, **{profile: new_credential(profile) for profile in missing}}
        _write_private(path, _render(everything.values()))
        return everything
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
    return existing


def register_principals(credentials: Mapping[str, LocalCredential]) -> None:
    """Give each local user of `PROFILES` its teams and roles in the principals table; idempotent."""
    from lambdas.principals import put_principal

    for profile, (teams, roles) in PROFILES.items():
        put_principal(credentials[profile].arn, teams=teams, roles=roles)


class CredentialStore:
    """The secrets of the local users by access key id, as the local API reads them to verify signatures.

    Built from a file (`from_file`), it reads the file again when it changes,
    so a profile added by hand is known without a restart.
    """

    def __init__(self, credentials: Iterable[LocalCredential] = (), *, path: Path | None = None) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._by_key = {credential.access_key_id: credential for credential in credentials}

    @classmethod
    def from_file(cls, path: Path) -> CredentialStore:
        store = cls(path=path)
        store._reload()
        return store

    def _reload(self) -> None:
        assert self._path is not None
        try:
            status = self._path.stat()
        except FileNotFoundError:
            self._stamp, self._by_key = None, {}
            return
        stamp = (status.st_mtime_ns, status.st_size)
        if stamp != self._stamp:
            credentials = read_credentials(self._path)
            self._by_key = {credential.access_key_id: credential for credential in credentials.values()}
            self._stamp = stamp

    def by_profile(self) -> dict[str, LocalCredential]:
        """The local users by profile, in the file's order (the console offers them to sign as)."""
        if self._path is not None:
            self._reload()
        return {credential.profile: credential for credential in self._by_key.values()}

    def lookup(self, access_key_id: str) -> LocalCredential | None:
        """The local user whose access key id this is, or None."""
        if self._path is not None:
            self._reload()
        return self._by_key.get(access_key_id)
