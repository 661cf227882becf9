"""`cdcflow engine ...`: the local Step Functions engine with cdcflow's workflows loaded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from cdcflow.catalogue import local_definition_substitutions, resolve_local_function
from localsfn import Engine
from localsfn.__main__ import run_until_signalled

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


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="The port of the Step Functions API (0 picks a free one).")] = 8600,
    db: Annotated[Path, typer.Option(help="The journal; executions in it resume on start.")] = Path(".cdcflow/engine.sqlite"),
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
) -> None:
    """Serve the Step Functions API with cdcflow's workflows, until SIGTERM or Ctrl-C."""
    db.parent.mkdir(parents=True, exist_ok=True)
    engine = Engine(db, resolve_local_function)
    try:
        machines = load_workflows(engine)
    except Exception:
        engine.close()
        raise
    for name, arn in machines.items():
        typer.echo(f"{name}: {arn}")
    run_until_signalled(engine, host, port)
