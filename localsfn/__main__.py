"""`python -m localsfn --db PATH --port PORT --functions module:attribute`: serve the API until SIGTERM/SIGINT.

`--functions` names a mapping from Lambda ARNs to handlers, or a callable
that takes an ARN and returns the handler (or None), importable from the
current environment.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from typing import Any

from localsfn.engine import Engine
from localsfn.journal import JournalInUse
from localsfn.server import DEFAULT_PORT, serve


def load_attribute(reference: str) -> Any:
    """Import `package.module:attribute`."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"--functions must look like package.module:attribute, got {reference!r}")
    return getattr(importlib.import_module(module_name), attribute)


def run_until_signalled(engine: Engine, host: str, port: int) -> None:
    """Serve `engine`, print the endpoint, and close both cleanly on SIGTERM or SIGINT. Blocks.

    Exits with an error if the engine stops on its own (its journal refused a
    step, say), so that the process is seen down and restarted rather than left
    answering requests it can no longer carry out.
    """
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    server = serve(engine, host=host, port=port)
    print(f"localsfn serving the Step Functions API at {server.endpoint_url}", flush=True)
    try:
        while not stop.wait(0.5) and engine.failure is None:
            pass
    finally:
        server.close()
        engine.close()
    if engine.failure is not None:
        raise SystemExit(f"localsfn: {engine.stopped_reason}; restart it to resume from the journal")


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localsfn", description=__doc__)
    parser.add_argument("--db", required=True, help="the SQLite journal (created if missing; resumed if not)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the API's port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--functions", required=True, help="package.module:attribute, a mapping or resolver of Lambda ARNs")
    return parser


def main(argv: list[str] | None = None) -> None:
    arguments = argument_parser().parse_args(argv)
    try:
        engine = Engine(arguments.db, load_attribute(arguments.functions))
    except JournalInUse as in_use:
        raise SystemExit(f"localsfn: {in_use}") from None
    run_until_signalled(engine, arguments.host, arguments.port)


if __name__ == "__main__":
    main(sys.argv[1:])
