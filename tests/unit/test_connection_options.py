"""The connection options, declared once on the group: read before or after the command's name, from the context."""

import pytest
import typer
from typer.testing import CliRunner

from cdcflow import cli, operate_cli
from cdcflow.connection_options import ConnectionOptions, OptionsAfterCommand, connection_options

pytestmark = pytest.mark.unit


def probe_app() -> tuple[typer.Typer, list[tuple[ConnectionOptions, dict]]]:
    """A group like the CLI's, whose commands record the options they were given."""
    seen: list[tuple[ConnectionOptions, dict]] = []
    commands = typer.Typer()

    @commands.command()
    def provision(
        ctx: typer.Context,
        spec_file: str,
        comment: str | None = typer.Option(None, "--comment"),
        no_follow: bool = typer.Option(False, "--no-follow"),
    ) -> None:
        seen.append((ConnectionOptions.of(ctx), {"spec_file": spec_file, "comment": comment, "no_follow": no_follow}))

    local = typer.Typer()

    @local.command()
    def up(ctx: typer.Context) -> None:
        seen.append((ConnectionOptions.of(ctx), {}))

    app = typer.Typer(cls=OptionsAfterCommand, callback=connection_options)
    app.add_typer(commands)
    app.add_typer(local, name="local")
    return app, seen


@pytest.mark.parametrize(
    "arguments",
    [
        ["--api-url", "https://api", "--region", "eu-west-1", "--aws", "provision", "spec.json"],
        ["provision", "spec.json", "--api-url", "https://api", "--region", "eu-west-1", "--aws"],
        ["provision", "--api-url=https://api", "spec.json", "--aws", "--region=eu-west-1"],
        ["--aws", "provision", "--region", "eu-west-1", "spec.json", "--api-url", "https://api"],
    ],
)
def test_the_options_read_the_same_before_and_after_the_command(arguments):
    app, seen = probe_app()

    result = CliRunner().invoke(app, arguments)

    assert result.exit_code == 0, result.output
    assert seen == [
        (
            ConnectionOptions(api_url="https://api", region="eu-west-1", use_aws=True),
            {"spec_file": "spec.json", "comment": None, "no_follow": False},
        )
    ]


def test_a_command_option_whose_value_looks_like_a_connection_option_keeps_it():
    app, seen = probe_app()

    result = CliRunner().invoke(app, ["provision", "spec.json", "--comment", "--aws", "--no-follow"])

    assert result.exit_code == 0, result.output
    assert seen == [(ConnectionOptions(), {"spec_file": "spec.json", "comment": "--aws", "no_follow": True})]


def test_nothing_after_a_double_dash_moves():
    app, seen = probe_app()

    result = CliRunner().invoke(app, ["provision", "--", "--aws"])

    assert result.exit_code == 0, result.output
    assert seen == [(ConnectionOptions(), {"spec_file": "--aws", "comment": None, "no_follow": False})]


def test_the_environment_variables_still_name_the_endpoints():
    app, seen = probe_app()

    result = CliRunner().invoke(
        app, ["provision", "spec.json"], env={"CDCFLOW_API_URL": "http://api", "CDCFLOW_SFN_ENDPOINT": "http://sfn"}
    )

    assert result.exit_code == 0, result.output
    assert seen[0][0] == ConnectionOptions(api_url="http://api", sfn_endpoint="http://sfn")


def test_a_sub_group_command_does_not_take_them_after_its_name():
    app, seen = probe_app()

    refused = CliRunner().invoke(app, ["local", "up", "--aws"])
    accepted = CliRunner().invoke(app, ["--profile", "ops", "local", "up"])

    assert refused.exit_code == 2 and "No such option: --aws" in refused.output
    assert accepted.exit_code == 0, accepted.output
    assert seen == [(ConnectionOptions(profile="ops"), {})]
    assert not seen[0][0].on_aws  # --profile alone names a local profile; --aws says AWS


@pytest.mark.parametrize("app", [operate_cli.app, cli.app], ids=["operate_cli", "cdcflow"])
@pytest.mark.parametrize("command", ["status", "watch orders", "history orders", "teardown orders", "approve orders"])
def test_every_operator_command_reads_them_in_either_position(app, command):
    before = CliRunner().invoke(app, ["--aws", "--region", "eu-west-1", *command.split()])
    after = CliRunner().invoke(app, [*command.split(), "--aws", "--region", "eu-west-1"])

    for result in (before, after):
        assert result.exit_code == 2, result.output
        assert "--api-url is required with --aws" in result.output


@pytest.mark.parametrize(
    "arguments", [["--aws", "--profile", "no-such-profile", "reconcile"], ["reconcile", "--profile", "no-such-profile",
                                                                          "--aws"]]
)
def test_reconcile_reads_the_profile_from_the_group(arguments, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))

    result = CliRunner().invoke(cli.app, arguments)

    assert result.exit_code == 2, result.output
    assert "no-such-profile" in result.output
