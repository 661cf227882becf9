"""Starting, recognising and stopping background processes."""

import os
import signal
import socket
import sys
import time

from cdcflow.local import process

IGNORES_SIGTERM = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n"
)


def wait_for_text(path, text, within=10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_a_spawned_process_logs_to_its_file_and_is_recognised_until_stopped(tmp_path):
    log = tmp_path / "logs" / "sleeper.log"
    record = process.spawn(
        [sys.executable, "-c", "print('hello', flush=True); import time; time.sleep(60)"], log_path=log
    )

    assert process.is_running(record)
    wait_for_text(log, "hello")
    process.stop(record, grace_seconds=5)
    assert not process.is_running(record)
    assert process.exit_code(record) is None or process.exit_code(record) == -signal.SIGTERM


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    log = tmp_path / "stubborn.log"
    record = process.spawn([sys.executable, "-c", IGNORES_SIGTERM], log_path=log)
    wait_for_text(log, "ready")

    process.stop(record, grace_seconds=0.5)

    assert not process.is_running(record)


def test_an_exited_child_is_not_running_and_reports_its_exit_code(tmp_path):
    record = process.spawn([sys.executable, "-c", "raise SystemExit(3)"], log_path=tmp_path / "x.log")
    deadline = time.monotonic() + 10
    while process.is_running(record) and time.monotonic() < deadline:
        time.sleep(0.05)

    assert not process.is_running(record)
    assert process.exit_code(record) == 3


def test_a_reused_pid_is_not_taken_for_the_recorded_process(tmp_path):
    record = process.spawn([sys.executable, "-c", "import time; time.sleep(60)"], log_path=tmp_path / "x.log")
    try:
        impostor = process.ProcessRecord(record.pid, record.start_ticks + 1)
        assert process.is_running(record)
        assert not process.is_running(impostor)
        process.stop(impostor)  # must not signal the live process
        assert process.is_running(record)
    finally:
        process.stop(record, grace_seconds=5)


def test_pid_files_round_trip_and_garbage_reads_as_none(tmp_path):
    path = tmp_path / "run" / "svc.pid"
    process.write_record(path, process.ProcessRecord(1234, 5678))

    assert process.read_record(path) == process.ProcessRecord(1234, 5678)
    path.write_text("not json")
    assert process.read_record(path) is None
    assert process.read_record(tmp_path / "missing.pid") is None


def test_a_port_with_a_listener_is_not_free():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not process.port_is_free("127.0.0.1", port)
    assert process.port_is_free("127.0.0.1", port)


def test_a_listener_on_every_interface_also_takes_the_loopback_port():
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        assert not process.port_is_free("127.0.0.1", listener.getsockname()[1])


def test_the_process_holding_a_port_is_named():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        listening = process.listening_sockets()
        held = {listening[inode] for inode in process.socket_inodes(os.getpid()) if inode in listening}
        assert ("127.0.0.1", port) in held
        assert process.listener_of(port).startswith(f"pid {os.getpid()}: ")
    assert process.listener_of(port) is None


def test_resident_memory_of_this_process_is_measured():
    assert process.resident_memory_bytes(os.getpid()) > 1024 * 1024
    assert process.resident_memory_bytes(2**22 + 12345) is None
