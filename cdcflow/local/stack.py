"""Start, stop and inspect the local stack as a whole.

`up` and `down` hold an exclusive lock on the state folder, so two processes
calling them at once take turns: the second finds the services running and
starts nothing.
"""

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cdcflow.local import connect, dynamodb, fetch, kafka, moto_server, opensearch, postgres, process, workflows
from cdcflow.local.config import LOOPBACK, Endpoints, StackConfig, config_from_env, endpoints_for
from cdcflow.local.errors import PortTaken, ServiceFailed
from cdcflow.local.service import Service

Progress = Callable[[str], None]

SERVICES: tuple[Service, ...] = (
    postgres.SERVICE,
    kafka.SERVICE,
    dynamodb.SERVICE,
    moto_server.SERVICE,
    opensearch.SERVICE,
    connect.SERVICE,
    workflows.ENGINE,
    workflows.API,
)

PROBE_PAUSE_SECONDS = 0.5
PROGRESS_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    listeners: dict[str, int]
    pid: int | None
    state: str  # "up", "unhealthy" (running but not answering) or "down"
    detail: str | None
    log_path: Path
    # Started only on request: "down" is its normal state.
    optional: bool = False


@dataclass(frozen=True)
class LocalStack:
    """A running local stack: how to reach it and which services the `up` call started."""

    config: StackConfig
    endpoints: Endpoints
    started: tuple[str, ...]


def _quiet(_message: str) -> None:
    pass


def _pid_file(config: StackConfig, service: Service) -> Path:
    return config.run_dir / f"{service.name}.pid"


def _running_record(config: StackConfig, service: Service) -> process.ProcessRecord | None:
    """The service's process if it is alive; a stale pid file is removed."""
    pid_file = _pid_file(config, service)
    record = process.read_record(pid_file)
    if record is None:
        return None
    if process.is_running(record):
        return record
    pid_file.unlink(missing_ok=True)
    return None


@contextmanager
def _stack_lock(config: StackConfig, progress: Progress) -> Iterator[None]:
    config.run_dir.mkdir(parents=True, exist_ok=True)
    with (config.run_dir / "stack.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("waiting for another cdcflow local command to finish ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_ports_free(config: StackConfig, service: Service) -> None:
    for listener, port in service.listeners(config).items():
        if not process.port_is_free(LOOPBACK, port):
            raise PortTaken(service.name, listener, port, process.listener_of(port))


def _describe(config: StackConfig, service: Service) -> str:
    return ", ".join(f"{LOOPBACK}:{port}" for port in service.listeners(config).values())


def _start(config: StackConfig, service: Service) -> process.ProcessRecord:
    service.prepare(config)
    record = process.spawn(
        service.command(config),
        log_path=config.log_path(service.name),
        cwd=config.service_dir(service.name),
        user=service.user,
    )
    process.write_record(_pid_file(config, service), record)
    return record


def _wait_ready(
    config: StackConfig,
    service: Service,
    record: process.ProcessRecord,
    progress: Progress,
) -> None:
    """Block until the service answers its probe. Raises ServiceFailed if it exits or the time runs out."""
    log_path = config.log_path(service.name)
    started = time.monotonic()
    last_report = started
    while True:
        reason = service.probe(config)
        if reason is None:
            return
        if not process.is_running(record):
            code = process.exit_code(record)
            how = f" with exit code {code}" if code is not None else ""
            raise ServiceFailed(service.name, f"exited during start-up{how}", log_path)
        now = time.monotonic()
        if now - started > service.ready_timeout_seconds:
            raise ServiceFailed(
                service.name, f"did not become ready within {service.ready_timeout_seconds:.0f}s ({reason})", log_path
            )
        if now - last_report >= PROGRESS_EVERY_SECONDS:
            progress(f"  waiting for {service.name} ({reason}, {now - started:.0f}s)")
            last_report = now
        time.sleep(PROBE_PAUSE_SECONDS)


def check_extras(extras: Collection[str]) -> None:
    optional = {service.name for service in SERVICES if service.optional}
    if unknown := set(extras) - optional:
        raise ValueError(f"not an optional service: {', '.join(sorted(unknown))} (optional: {', '.join(sorted(optional))})")


def up(config: StackConfig | None = None, progress: Progress = _quiet, extras: Collection[str] = ()) -> LocalStack:
    """Start whatever is not running and wait until every service is ready.

    Optional services (OpenSearch) are started only when `extras` names them;
    one that already runs is waited for like the others. Idempotent: running healthy services are left alone, dead ones are started
    again, nothing is started twice. May block for minutes (first run: jar
    downloads). Raises a LocalStackError with one line naming the service and
    its log; the services this call started are stopped again on failure.
    """
    config = config or config_from_env()
    check_extras(extras)
    with _stack_lock(config, progress):
        records = {service.name: _running_record(config, service) for service in SERVICES}
        active = [
            service
            for service in SERVICES
            if not service.optional or service.name in extras or records[service.name] is not None
        ]
        to_start = [service for service in active if records[service.name] is None]
        for service in to_start:
            _check_ports_free(config, service)
        if any(service.needs_jars for service in to_start):
            fetch.ensure_jars(config, progress)
        started: list[Service] = []
        try:
            ready: set[str] = set()
            for service in active:
                for need in service.needs:
                    if need not in ready:
                        needed = next(s for s in SERVICES if s.name == need)
                        _wait_ready(config, needed, records[need], progress)
                        ready.add(need)
                if records[service.name] is None:
                    progress(f"starting {service.name} on {_describe(config, service)}")
                    records[service.name] = _start(config, service)
                    started.append(service)
                else:
                    progress(f"{service.name} already running (pid {records[service.name].pid})")
            for service in active:
                if service.name not in ready:
                    _wait_ready(config, service, records[service.name], progress)
                    ready.add(service.name)
                if service.after_ready:
                    service.after_ready(config)
                if service in started:
                    progress(f"{service.name} ready")
        except BaseException:
            for service in reversed(started):
                _stop_service(config, service)
            raise
        endpoints = endpoints_for(config, postgres.ADMIN_USER, postgres.admin_password(config))
        return LocalStack(config, endpoints, tuple(service.name for service in started))


def _stop_service(config: StackConfig, service: Service) -> bool:
    record = _running_record(config, service)
    if record is not None:
        process.stop(record, stop_signal=service.stop_signal)
    _pid_file(config, service).unlink(missing_ok=True)
    return record is not None


def down(
    config: StackConfig | None = None,
    purge: bool = False,
    progress: Progress = _quiet,
    only: Collection[str] | None = None,
) -> None:
    """Stop the services (SIGTERM or the service's own stop signal, SIGKILL after a grace period).

    `only` names the services to stop (default: all). With `purge`, also delete
    the services' data, logs, the admin password and the local users'
    credentials file; the downloaded jars stay cached. Idempotent; blocks
    until the processes are gone.
    """
    config = config or config_from_env()
    if only is not None and (unknown := set(only) - {service.name for service in SERVICES}):
        raise ValueError(f"unknown services: {', '.join(sorted(unknown))}")
    with _stack_lock(config, progress):
        _stop_services(config, progress, only)
        if purge:
            for service in SERVICES:
                shutil.rmtree(config.service_dir(service.name), ignore_errors=True)
            shutil.rmtree(config.logs_dir, ignore_errors=True)
            shutil.rmtree(config.state_dir / "secrets", ignore_errors=True)
            config.credentials_file.unlink(missing_ok=True)
            progress(f"removed the data under {config.state_dir} (jars kept)")


def _stop_services(config: StackConfig, progress: Progress, only: Collection[str] | None) -> None:
    for service in reversed(SERVICES):
        if only is not None and service.name not in only:
            continue
        if _stop_service(config, service):
            progress(f"stopped {service.name}")


def _other_live_users(users_dir: Path, own: Path) -> list[Path]:
    """Registrations of other processes that still run; stale ones are removed."""
    live = []
    for registration in users_dir.glob("*.pid"):
        if registration == own:
            continue
        record = process.read_record(registration)
        if record is not None and process.is_running(record):
            live.append(registration)
        else:
            registration.unlink(missing_ok=True)
    return live


@contextmanager
def use(
    config: StackConfig | None = None, progress: Progress = _quiet, extras: Collection[str] = ()
) -> Iterator[LocalStack]:
    """`up`, and on exit stop the services this call started, unless another process still uses the stack.

    Each user registers itself under the state folder for as long as it runs, so a
    test session that started the stack does not stop it under another session that
    is still running; the last one out leaves it running rather than disrupt anyone.
    """
    config = config or config_from_env()
    users_dir = config.run_dir / "users"
    users_dir.mkdir(parents=True, exist_ok=True)
    own = users_dir / f"{os.getpid()}.pid"
    ticks = process.start_ticks(os.getpid())
    process.write_record(own, process.ProcessRecord(os.getpid(), ticks if ticks is not None else -1))
    try:
        local = up(config, progress, extras)
    except BaseException:
        own.unlink(missing_ok=True)
        raise
    try:
        yield local
    finally:
        own.unlink(missing_ok=True)
        if local.started:
            with _stack_lock(config, progress):
                if not _other_live_users(users_dir, own):
                    _stop_services(config, progress, local.started)


def status(config: StackConfig | None = None) -> list[ServiceStatus]:
    """Each service's listeners, pid and health. Does not start or stop anything."""
    config = config or config_from_env()
    statuses = []
    for service in SERVICES:
        record = _running_record(config, service)
        if record is None:
            state, detail = "down", None
        else:
            detail = service.probe(config)
            state = "up" if detail is None else "unhealthy"
        statuses.append(
            ServiceStatus(
                name=service.name,
                listeners=dict(service.listeners(config)),
                pid=record.pid if record else None,
                state=state,
                detail=detail,
                log_path=config.log_path(service.name),
                optional=service.optional,
            )
        )
    return statuses
