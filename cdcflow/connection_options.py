"""The connection options the operator commands share, declared once on the command group.

`connection_options` is the group's callback: it stores the options in the
context as a `ConnectionOptions`, which each command reads with
`ConnectionOptions.of(ctx)`. Click reads a group's options only before the
command's name (`cdcflow --aws status`); `OptionsAfterCommand` also takes them
after it (`cdcflow status --aws`), as each command took them when they were its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cdcflow.api_client import DEFAULT_API_URL
from cdcflow.history import DEFAULT_SFN_ENDPOINT


@dataclass(frozen=True)
class ConnectionOptions:
    """Where the commands find the pipelines API and Step Functions, and whether on AWS."""

    api_url: str | None = None
    sfn_endpoint: str | None = None
    use_aws: bool = False
    profile: str | None = None
    region: str | None = None

    @property
    def on_aws(self) -> bool:
        """`--aws`: the deployed stack. `--profile` alone names a profile of the local credentials file."""
        return self.use_aws

    @classmethod
    def of(cls, ctx: typer.Context) -> ConnectionOptions:
        """The options the group's callback stored; the defaults when the command runs without the group."""
        return ctx.find_object(cls) or cls()


def connection_options(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            envvar="CDCFLOW_API_URL",
            show_default=False,
            help=f"The pipelines API (default: {DEFAULT_API_URL}, the local API; required with --aws)",
        ),
    ] = None,
    sfn_endpoint: Annotated[
        str | None,
        typer.Option(
            "--sfn-endpoint",
            envvar="CDCFLOW_SFN_ENDPOINT",
            show_default=False,
            help=(
                f"The Step Functions endpoint (default: {DEFAULT_SFN_ENDPOINT}, the local engine; "
                "AWS with --aws)"
            ),
        ),
    ] = None,
    use_aws: Annotated[
        bool,
        typer.Option(
            "--aws",
            help="Use AWS, with boto3's normal credential resolution (reconcile: invoke the deployed function)",
        ),
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="CDCFLOW_PROFILE",
            show_default=False,
            help=(
                "The AWS profile whose credentials sign the requests (default: AWS_PROFILE; locally "
                "cdcflow-admin, from the local stack's credentials file; with --aws boto3's own resolution)"
            ),
        ),
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="The AWS region (default: boto3's)")] = None,
) -> None:
    """Store the connection options for the command; connects to nothing."""
    ctx.obj = ConnectionOptions(api_url, sfn_endpoint, use_aws, profile, region)


class OptionsAfterCommand(TyperGroup):
    """A group that also takes its own options after a command's name (not after a sub-group's).

    Those options are moved before the command's name, so Click parses them as
    the group's; a command's own options and their values are left where they
    are, and nothing after `--` moves.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._hoisted(ctx, args))

    def _hoisted(self, ctx: typer.Context, args: list[str]) -> list[str]:
        own = _value_taking(self.params)
        position = 0
        while position < len(args) and args[position].startswith("-") and args[position] != "--":
            name, inline = _split(args[position])
            position += 2 if own.get(name) and not inline else 1
        if position >= len(args) or args[position] == "--":
            return args
        name = args[position]
        command = self.get_command(ctx, name)
        if command is None or isinstance(command, TyperGroup):
            return args
        theirs = _value_taking(command.params)
        moved: list[str] = []
        kept: list[str] = []
        rest = position + 1
        while rest < len(args):
            argument = args[rest]
            if argument == "--":
                kept += args[rest:]
                break
            option, inline = _split(argument)
            taken = 2 if (own.get(option) or theirs.get(option)) and not inline else 1
            (moved if option in own and option not in theirs else kept).extend(args[rest : rest + taken])
            rest += taken
        return [*args[:position], *moved, name, *kept]


def _value_taking(params: list[Any]) -> dict[str, bool]:
    """Each option's names, and whether the option takes a value (the next argument, unless given with `=`)."""
    names: dict[str, bool] = {}
    for param in params:
        # Typer carries its own copy of Click: its parameters are not `click.Option`s.
        if param.param_type_name == "option":
            takes_value = not param.is_flag and not param.count
            names.update(dict.fromkeys([*param.opts, *param.secondary_opts], takes_value))
    return names


def _split(argument: str) -> tuple[str, bool]:
    """An argument's option name, and whether its value is inline (`--region=eu-west-1`)."""
    name, equals, _ = argument.partition("=")
    return (name, True) if equals and name.startswith("--") else (argument, False)
