"""Background processes of the local stack: start, recognise, stop, measure.

A service's pid file holds its pid and its start time in clock ticks since boot,
so a pid reused by an unrelated process after a reboot or crash is never taken
for the service (and never signalled).
"""

import errno
import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Children of this process are kept here so they can be reaped when they exit:
# a dead child that is never waited for stays a zombie and would look alive.
_children: dict[int, subprocess.Popen] = {}

# A log larger than this is moved aside (one generation kept) when its service starts again.
ROTATE_LOG_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    start_ticks: int


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    return text[text.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot; None when it is gone."""
    stat = _proc_stat(pid)
    return int(stat[19]) if stat else None


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    user: str | None = None,
) -> ProcessRecord:
    """Start `argv` in its own session with stdout and stderr appended to `log_path`.

    The process outlives the caller and ignores the caller's terminal signals.
    Does not block.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists() and log_path.stat().st_size > ROTATE_LOG_BYTES:
        log_path.replace(log_path.with_name(log_path.name + ".1"))
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            start_new_session=True,
        )
    _children[child.pid] = child
    ticks = start_ticks(child.pid)
    return ProcessRecord(child.pid, ticks if ticks is not None else -1)


def is_running(record: ProcessRecord) -> bool:
    """Whether the recorded process is still alive: not exited, not a reused pid, and not a zombie
    whose threads have all exited (only then are its sockets closed)."""
    child = _children.get(record.pid)
    if child is not None and child.poll() is not None:
        return False
    stat = _proc_stat(record.pid)
    if stat is None or int(stat[19]) != record.start_ticks:
        return False
    if stat[0] == "Z":
        # A killed JVM's main thread turns zombie before its other threads have exited,
        # and the process keeps its files (its listening sockets) until the last one has.
        return _live_threads(record.pid) > 1
    return True


def _live_threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


def exit_code(record: ProcessRecord) -> int | None:
    """The exit status of a child started by this process, if it has exited."""
    child = _children.get(record.pid)
    return child.poll() if child is not None else None


def write_record(path: Path, record: ProcessRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": record.pid, "start_ticks": record.start_ticks}))
    tmp.replace(path)


def read_record(path: Path) -> ProcessRecord | None:
    """The record in a pid file, or None when there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text())
        return ProcessRecord(int(data["pid"]), int(data["start_ticks"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def stop(record: ProcessRecord, *, stop_signal: int = signal.SIGTERM, grace_seconds: float = 30.0) -> None:
    """Stop the process with `stop_signal`, then SIGKILL its whole session after the grace period.

    Blocks until it is gone. A process that is already gone is fine.
    """
    if not is_running(record):
        return
    try:
        os.kill(record.pid, stop_signal)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not is_running(record):
            return
        time.sleep(0.1)
    try:
        # The session id is the pid (start_new_session): this also ends any children it left.
        os.killpg(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while is_running(record):
        time.sleep(0.05)


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port (a listener on 0.0.0.0 counts as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def resident_memory_bytes(pid: int) -> int | None:
    """The resident set size of a process, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        return None
    return None


def listening_sockets() -> dict[str, tuple[str, int]]:
    """Every TCP socket in LISTEN state on this machine: socket inode -> (IPv4 or IPv6 address, port)."""
    found = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word of the address in host (little-endian) order.
            ip = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))
            ip = getattr(ip, "ipv4_mapped", None) or ip  # a JVM listens on IPv4-mapped IPv6
            found[fields[9]] = (str(ip), int(port, 16))
    return found


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets a process holds open (empty when it is gone or not ours to inspect)."""
    inodes = set()
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except (FileNotFoundError, PermissionError):
        return inodes
    for descriptor in descriptors:
        try:
            target = os.readlink(descriptor)
        except (FileNotFoundError, PermissionError):
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def listener_of(port: int) -> str | None:
    """'pid N: command' of the process listening on `port`, when it can be found."""
    inodes = {inode for inode, (_ip, listening) in listening_sockets().items() if listening == port}
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and socket_inodes(int(entry.name)) & inodes:
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except FileNotFoundError:
                continue
            return f"pid {entry.name}: {command[:80]}"
    return None
