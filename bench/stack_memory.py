"""Resident memory of a service: its process and everything in its session (PostgreSQL's backends)."""

from pathlib import Path

from cdcflow.local import process


def session_resident_memory_bytes(leader_pid: int) -> int:
    """RSS summed over every process whose session id is `leader_pid` (shared pages counted per process)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == leader_pid:
            total += process.resident_memory_bytes(int(entry.name)) or 0
    return total
