"""`up`, `down`, `status` and `use` over small stand-in services (Python HTTP servers), no JVMs."""

import dataclasses
import socket
import sys
import threading
from pathlib import Path

import pytest
import requests

from cdcflow.local import process, stack
from cdcflow.local.config import StackConfig
from cdcflow.local.errors import PortTaken, ServiceFailed
from cdcflow.local.service import Service


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_service(name: str, port: int, *, command: list[str] | None = None, timeout: float = 20) -> Service:
    def probe(_config: StackConfig) -> str | None:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
        except requests.RequestException as error:
            return type(error).__name__
        return None

    return Service(
        name=name,
        listeners=lambda _config: {name: port},
        prepare=lambda config: config.service_dir(name).mkdir(parents=True, exist_ok=True),
        command=lambda _config: command or [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        probe=probe,
        ready_timeout_seconds=timeout,
    )


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    config = StackConfig(state_dir=tmp_path / "state")
    # up() reports the PostgreSQL admin login among the endpoints.
    (config.state_dir / "secrets").mkdir(parents=True)
    (config.state_dir / "secrets" / "postgres-admin-password").write_text("pw")
    return config


@pytest.fixture
def services(monkeypatch, config):
    web, api = http_service("web", free_port()), http_service("api", free_port())
    monkeypatch.setattr(stack, "SERVICES", (web, api))
    yield web, api
    stack.down(config)


def pids(config: StackConfig) -> dict[str, int | None]:
    return {status.name: status.pid for status in stack.status(config)}


def test_up_starts_every_service_once_and_again_starts_nothing(config, services):
    messages: list[str] = []

    first = stack.up(config, progress=messages.append)
    running = pids(config)
    second = stack.up(config)

    assert first.started == ("web", "api")
    assert second.started == ()
    assert pids(config) == running and None not in running.values()
    assert [s.state for s in stack.status(config)] == ["up", "up"]
    assert any(message.startswith("starting web on 127.0.0.1:") for message in messages)


def test_down_stops_everything_and_status_says_down(config, services):
    stack.up(config)
    records = [process.read_record(config.run_dir / f"{name}.pid") for name in ("web", "api")]

    stack.down(config)

    assert [s.state for s in stack.status(config)] == ["down", "down"]
    assert not any(process.is_running(record) for record in records)


def test_down_keeps_the_local_users_credentials_and_purge_deletes_them(config, services):
    from cdcflow.local.credentials import ensure_credentials

    users = ensure_credentials(config.credentials_file)
    stack.up(config)

    stack.down(config)
    assert ensure_credentials(config.credentials_file) == users

    stack.down(config, purge=True)
    assert not config.credentials_file.exists()
    assert not (config.state_dir / "secrets").exists()


def test_a_killed_service_shows_as_down_and_up_starts_only_that_one(config, services):
    stack.up(config)
    api_before = pids(config)["api"]
    record = process.read_record(config.run_dir / "web.pid")
    process.stop(record, grace_seconds=5)

    assert {s.name: s.state for s in stack.status(config)} == {"web": "down", "api": "up"}
    assert stack.up(config).started == ("web",)
    assert pids(config)["api"] == api_before


def test_two_concurrent_ups_start_each_service_once(config, services):
    results = []
    threads = [threading.Thread(target=lambda: results.append(stack.up(config))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(result.started for result in results) == [(), ("web", "api")]


def test_a_taken_port_fails_before_anything_starts(config, monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        web = http_service("web", free_port())
        monkeypatch.setattr(stack, "SERVICES", (web, http_service("api", taken)))

        with pytest.raises(PortTaken, match=f"port {taken} needed by api is already in use"):
            stack.up(config)

    assert pids(config) == {"web": None, "api": None}
    assert not config.service_dir("web").exists()


def test_a_service_that_never_answers_fails_with_its_log_and_the_started_ones_are_stopped(config, monkeypatch):
    web = http_service("web", free_port())
    silent = http_service(
        "silent", free_port(), command=[sys.executable, "-c", "import time; time.sleep(60)"], timeout=1
    )
    monkeypatch.setattr(stack, "SERVICES", (web, silent))

    with pytest.raises(ServiceFailed) as raised:
        stack.up(config)

    message = str(raised.value)
    assert message.startswith("silent did not become ready within 1s (ConnectionError)")
    assert message.endswith(f"see {config.log_path('silent')}")
    assert pids(config) == {"web": None, "silent": None}


def test_a_service_that_exits_during_start_up_reports_its_exit_code(config, monkeypatch):
    crashing = http_service("crashing", free_port(), command=[sys.executable, "-c", "raise SystemExit(7)"])
    monkeypatch.setattr(stack, "SERVICES", (crashing,))

    with pytest.raises(ServiceFailed, match="crashing exited during start-up with exit code 7; see "):
        stack.up(config)


def test_use_stops_what_it_started_unless_another_user_is_still_running(config, services):
    other_user = process.spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"], log_path=config.logs_dir / "u.log"
    )
    process.write_record(config.run_dir / "users" / f"{other_user.pid}.pid", other_user)

    with stack.use(config) as local:
        assert local.started == ("web", "api")
    assert [s.state for s in stack.status(config)] == ["up", "up"]

    process.stop(other_user, grace_seconds=5)
    stack.down(config)
    with stack.use(config) as local:
        assert local.started == ("web", "api")
    assert [s.state for s in stack.status(config)] == ["down", "down"]


def test_use_leaves_alone_what_was_already_running(config, services):
    stack.up(config)
    running = pids(config)

    with stack.use(config) as local:
        assert local.started == ()

    assert pids(config) == running


def test_an_optional_service_starts_only_when_asked_for_and_stops_with_the_rest(monkeypatch, config):
    web = http_service("web", free_port())
    search = dataclasses.replace(http_service("search", free_port()), optional=True)
    monkeypatch.setattr(stack, "SERVICES", (web, search))
    try:
        assert stack.up(config).started == ("web",)
        statuses = {s.name: s for s in stack.status(config)}
        assert statuses["search"].state == "down" and statuses["search"].optional

        assert stack.up(config, extras=("search",)).started == ("search",)
        # Once running it is waited for like the others, asked for or not.
        assert stack.up(config).started == ()
        assert {s.name: s.state for s in stack.status(config)} == {"web": "up", "search": "up"}

        with pytest.raises(ValueError, match="not an optional service: web"):
            stack.up(config, extras=("web",))
    finally:
        stack.down(config)
    assert {s.name: s.state for s in stack.status(config)} == {"web": "down", "search": "down"}
