"""`cdcflow workflows render [--check]`: the step tables in statemachines/ written out as the committed ASL."""

from pathlib import Path

import typer

from statemachines import WORKFLOWS, render

app = typer.Typer(no_args_is_help=True)


@app.command("render")
def render_command(
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 naming the first stale file."),
    directory: Path = typer.Option(render.STATEMACHINES_DIR, "--dir", help="Where the .asl.json files live."),
) -> None:
    """Render every workflow's step table to its .asl.json (byte-identical on every run)."""
    if check:
        difference = render.first_difference(WORKFLOWS, directory)
        if difference:
            typer.echo(difference, err=True)
            raise typer.Exit(1)
        typer.echo(f"{len(WORKFLOWS)} workflow definitions are up to date")
        return
    changed = render.write(WORKFLOWS, directory)
    for path in changed:
        typer.echo(f"wrote {path}")
    if not changed:
        typer.echo(f"{len(WORKFLOWS)} workflow definitions were already up to date")
