"""PostgreSQL from Debian's packages, configured for logical replication.

The cluster runs as the unprivileged `postgres` OS user (the server refuses
root), listens on 127.0.0.1 only, and takes password (SCRAM) logins over TLS
only (`hostssl`), with a server certificate for 127.0.0.1 and localhost signed
by the stack's own CA (`cdcflow.local.tls`), so clients connect with
`sslmode=verify-full`. Its superuser `cdcflow_admin` has a generated password
kept in a 0600 file under the state folder; the password is never logged or
put on a command line.
"""

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from cdcflow.local import tls
from cdcflow.local.config import LOOPBACK, StackConfig
from cdcflow.local.errors import LocalStackError, ToolMissing
from cdcflow.local.service import Service

ADMIN_USER = "cdcflow_admin"
OS_USER = "postgres"
DATABASES = ("source", "sink")

# Enough slots and senders for ~25 pipelines plus the tests' own; small memory
# because it shares a two-core machine with Kafka, Connect and the test suite.
SERVER_SETTINGS = {
    "listen_addresses": LOOPBACK,
    "wal_level": "logical",
    "max_replication_slots": "64",
    "max_wal_senders": "64",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "work_mem": "2MB",
    "maintenance_work_mem": "32MB",
    "max_wal_size": "256MB",
    "password_encryption": "scram-sha-256",
    # A throwaway local cluster: no need to pay for crash safety on every commit.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
    # A failing statement is not copied into the log: it may be a CREATE ROLE ... PASSWORD.
    "log_min_error_statement": "panic",
    "log_line_prefix": "%m [%p] %q%u@%d ",
}

HBA = f"""\
# Written by cdcflow.local on every start: password logins over TLS on loopback TCP only.
hostssl all             all             {LOOPBACK}/32            scram-sha-256
hostssl replication     all             {LOOPBACK}/32            scram-sha-256
"""


def server_binaries() -> Path:
    """The bin folder of the newest PostgreSQL server installed from Debian's packages."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not found:
        raise ToolMissing(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
            "run scripts/bootstrap (apt-get install postgresql)"
        )
    return found[-1]


def data_dir(config: StackConfig) -> Path:
    return config.service_dir("postgres") / "data"


def password_file(config: StackConfig) -> Path:
    return config.state_dir / "secrets" / "postgres-admin-password"


def admin_password(config: StackConfig) -> str:
    """The admin superuser's password. Raises LocalStackError when the cluster was never initialised."""
    try:
        return password_file(config).read_text().strip()
    except FileNotFoundError:
        raise LocalStackError(
            f"the PostgreSQL admin password file {password_file(config)} is missing: "
            "run `cdcflow local up` (or `cdcflow local down --purge` if the cluster is broken)"
        ) from None


def _os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise ToolMissing(
            f"OS user {OS_USER!r} not found: run scripts/bootstrap (the postgresql package creates it)"
        ) from None


def _check_reachable(path: Path, user: pwd.struct_passwd) -> None:
    """The server, running as `user`, must be able to walk down to its data folder."""
    for folder in reversed(path.parents):
        mode = folder.stat()
        if mode.st_uid != user.pw_uid and not mode.st_mode & 0o001:
            raise LocalStackError(
                f"PostgreSQL runs as {OS_USER!r}, which cannot enter {folder} (mode {oct(mode.st_mode & 0o777)}): "
                "move the state folder with CDCFLOW_LOCAL_STATE_DIR or allow others to traverse that folder"
            )


def _ensure_password(config: StackConfig) -> str:
    path = password_file(config)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24))
    return admin_password(config)


def _initialise(config: StackConfig, user: pwd.struct_passwd) -> None:
    """Create the cluster in a side folder and move it into place, so a failed initdb leaves nothing behind."""
    target = data_dir(config)
    partial = target.with_name("data.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, mode=0o700)
    os.chown(partial, user.pw_uid, user.pw_gid)
    password = _ensure_password(config)
    # initdb reads the password from a file the postgres user can read; it lives only as long as initdb runs.
    pwfile = partial.parent / ".initdb-password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password)
    os.chown(pwfile, user.pw_uid, user.pw_gid)
    log_path = config.log_path("postgres")
    try:
        with log_path.open("ab") as log:
            result = subprocess.run(
                [
                    str(server_binaries() / "initdb"),
                    "--pgdata",
                    str(partial),
                    "--username",
                    ADMIN_USER,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=[],
                check=False,
            )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise LocalStackError(f"initdb failed (exit {result.returncode}); see {log_path}")
    (partial / "pg_hba.conf").write_text(HBA)
    with (partial / "postgresql.conf").open("a") as conf:
        conf.write("\n# Settings for the cdcflow local stack, rewritten on every start.\ninclude 'cdcflow.conf'\n")
    partial.rename(target)


def prepare(config: StackConfig) -> None:
    """Initialise the cluster if needed and write its settings. Idempotent."""
    user = _os_user()
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    home = config.service_dir("postgres")
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)  # whatever the umask, the server must be able to enter it
    _check_reachable(home, user)
    if not (data_dir(config) / "PG_VERSION").exists():
        _initialise(config, user)
    socket_dir = home / "run"
    socket_dir.mkdir(exist_ok=True)
    os.chown(socket_dir, user.pw_uid, user.pw_gid)
    certificate = tls.ensure_server_certificate(config, home / "tls", owner=(user.pw_uid, user.pw_gid))
    # Rewritten on every start, so a cluster initialised before TLS takes TLS-only logins too.
    (data_dir(config) / "pg_hba.conf").write_text(HBA)
    settings = SERVER_SETTINGS | {
        "port": str(config.ports.postgres),
        "unix_socket_directories": str(socket_dir),
        "ssl": "on",
        "ssl_cert_file": str(certificate.certificate),
        "ssl_key_file": str(certificate.key),
        "ssl_min_protocol_version": "TLSv1.2",
    }
    conf = data_dir(config) / "cdcflow.conf"
    conf.write_text("".join(f"{name} = '{value}'\n" for name, value in settings.items()))
    os.chown(conf, user.pw_uid, user.pw_gid)


def command(config: StackConfig) -> list[str]:
    return [str(server_binaries() / "postgres"), "-D", str(data_dir(config))]


def connect(config: StackConfig, database: str = "postgres", timeout_seconds: int = 3) -> psycopg.Connection:
    """An autocommit connection as the admin superuser, over TLS verified against the stack's CA."""
    return psycopg.connect(
        host=LOOPBACK,
        port=config.ports.postgres,
        dbname=database,
        user=ADMIN_USER,
        password=admin_password(config),
        connect_timeout=timeout_seconds,
        autocommit=True,
        sslmode="verify-full",
        sslrootcert=str(tls.ca_file(config)),
    )


def probe(config: StackConfig) -> str | None:
    """None once the server takes logins over verified TLS and runs with wal_level=logical."""
    try:
        with connect(config) as conn:
            wal_level = conn.execute("SHOW wal_level").fetchone()[0]
    except psycopg.OperationalError as error:
        if "SSL" in str(error) or "certificate" in str(error):
            return (
                "its TLS does not verify against the stack's CA (a server started before TLS? "
                "`cdcflow local down` and `up` again)"
            )
        return f"not accepting logins yet ({type(error).__name__})"
    if wal_level != "logical":
        return f"wal_level is {wal_level}, not logical"
    return None


def ensure_databases(config: StackConfig) -> None:
    """Create the source and sink databases if they are missing. Idempotent."""
    with connect(config) as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in DATABASES:
            if name not in existing:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


SERVICE = Service(
    name="postgres",
    listeners=lambda config: {"postgres": config.ports.postgres},
    prepare=prepare,
    command=command,
    probe=probe,
    ready_timeout_seconds=60,
    user=OS_USER,
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to leave.
    stop_signal=signal.SIGINT,
    after_ready=ensure_databases,
)
