"""`cdcflow engine ...`: the local Step Functions engine with cdcflow's workflows loaded."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from lambdas.common import idempotency
from localsfn import Engine
from localsfn.__main__ import run_until_signalled
from localsfn.journal import JournalInUse
from localsfn.server import DEFAULT_PORT
from statemachines.catalogue import local_definition_substitutions, resolve_local_function

STATEMACHINES_DIR = Path(__file__).resolve().parent.parent / "statemachines"
DEFINITION_SUFFIX = ".asl.json"
_SUBSTITUTION = re.compile(r"\$\{(\w+)\}")

app = typer.Typer(no_args_is_help=True)


def state_machine_name(definition_file: Path) -> str:
    """`provision_pipeline.asl.json` -> `ProvisionPipeline`."""
    stem = definition_file.name.removesuffix(DEFINITION_SUFFIX)
    return "".join(part.capitalize() for part in stem.split("_"))


def substitute(text: str, substitutions: dict[str, str], source: Path) -> str:
    """Fill `${Name}` placeholders; a placeholder with no value is an error naming it and the file."""
    missing = sorted({name for name in _SUBSTITUTION.findall(text) if name not in substitutions})
    if missing:
        raise ValueError(f"{source.name}: no value for {', '.join('${' + name + '}' for name in missing)}")
    return _SUBSTITUTION.sub(lambda match: substitutions[match.group(1)], text)


def load_workflows(engine: Engine, definitions_dir: Path = STATEMACHINES_DIR) -> dict[str, str]:
    """Create or update one state machine per `*.asl.json` file; returns {name: ARN}. Idempotent."""
    substitutions = local_definition_substitutions()
    machines = {}
    for definition_file in sorted(definitions_dir.glob(f"*{DEFINITION_SUFFIX}")):
        name = state_machine_name(definition_file)
        definition = substitute(definition_file.read_text(), substitutions, definition_file)
        existing = {machine["name"]: machine["stateMachineArn"] for machine in engine.list_state_machines()}
        if name in existing:
            if engine.describe_state_machine(existing[name])["definition"] != definition:
                engine.update_state_machine(existing[name], definition)
            machines[name] = existing[name]
        else:
            machines[name] = engine.create_state_machine(name, definition)
    return machines


def forget_dead_steps() -> None:
    """The steps in flight when the last engine on this journal died died with it: forget their in-progress records.

    The engine runs every step of the local stack in its own process, so an
    in-progress idempotency record found as it starts belongs to a run that is
    gone. Left there, the resumed step would be refused
    (`IdempotencyAlreadyInProgressError`) until the record expired, which
    Powertools ties to the function's timeout (300 s for CreateSlot) as on
    AWS, where a Lambda cut off by its timeout is known dead only then.
    The lease of a scheduled reconcile sweep (`cdcflow.local.reconcile_schedule`)
    that the last engine ran is released for the same reason.
    """
    if not os.environ.get(idempotency.TABLE_ENV) or idempotency.idempotency_disabled():
        return
    from cdcflow.local.reconcile_schedule import forget_dead_sweep

    forgotten = idempotency.forget_in_progress_records()
    if forgotten:
        typer.echo(f"forgot {len(forgotten)} in-progress step record(s) of runs that died with the last engine",
                   err=True)
    # The same table holds the reconcile lease; a scheduled sweep that held it died with the last engine too.
    if forget_dead_sweep():
        typer.echo("released the reconcile lease of a scheduled sweep that died with the last engine", err=True)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="The port of the Step Functions API (0 picks a free one).")] = DEFAULT_PORT,
    db: Annotated[Path, typer.Option(help="The journal; executions in it resume on start.")] = Path(".cdcflow/engine.sqlite"),
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
) -> None:
    """Serve the Step Functions API with cdcflow's workflows, until SIGTERM or Ctrl-C."""
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = Engine(db, resolve_local_function, before_resume=forget_dead_steps)
    except JournalInUse as in_use:
        typer.echo(f"cdcflow engine serve: {in_use}", err=True)
        raise typer.Exit(1) from None
    try:
        machines = load_workflows(engine)
    except Exception:
        engine.close()
        raise
    for name, arn in machines.items():
        typer.echo(f"{name}: {arn}")
    run_until_signalled(engine, host, port)
