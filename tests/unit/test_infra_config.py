"""CDK context settings: defaults, parsing, and errors that name the bad key."""

import json
from pathlib import Path

import pytest

from infra.config import (
    DEFAULT_ADMIN_SECRET_PREFIX,
    DEFAULT_RECONCILE_SCHEDULE,
    InvalidSetting,
    NetworkSettings,
    Settings,
    settings_from_values,
)

pytestmark = pytest.mark.unit

VPC = "vpc-0123456789abcdef0"
SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]


def test_empty_context_gives_the_defaults():
    assert settings_from_values({}) == Settings()
    assert settings_from_values({"vpcId": "", "subnetIds": [], "securityGroupIds": []}).network == NetworkSettings()


def test_cdk_json_context_matches_the_defaults():
    context = json.loads((Path(__file__).parents[2] / "cdk.json").read_text())["context"]
    settings = settings_from_values(context)
    assert settings == Settings()
    assert settings.admin_secret_prefix == DEFAULT_ADMIN_SECRET_PREFIX
    assert settings.reconcile_schedule == DEFAULT_RECONCILE_SCHEDULE


def test_existing_vpc_from_lists_or_comma_separated_strings():
    from_lists = settings_from_values({"vpcId": VPC, "subnetIds": SUBNETS, "securityGroupIds": ["sg-0123456789abcdef0"]})
    from_strings = settings_from_values({
        "vpcId": VPC, "subnetIds": ",".join(SUBNETS), "securityGroupIds": "sg-0123456789abcdef0",
    })
    assert from_lists == from_strings
    assert from_lists.network == NetworkSettings(VPC, tuple(SUBNETS), ("sg-0123456789abcdef0",))


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"vpcId": VPC}, "subnetIds"),
        ({"vpcId": "vpc-XYZ", "subnetIds": SUBNETS}, "vpcId"),
        ({"vpcId": VPC, "subnetIds": ["subnet-nothex"]}, "subnetIds"),
        ({"vpcId": VPC, "subnetIds": SUBNETS, "securityGroupIds": ["sg-1"]}, "securityGroupIds"),
        ({"subnetIds": SUBNETS}, "need vpcId"),
        ({"vpcId": 42}, "vpcId"),
        ({"adminSecretPrefix": "admins"}, "adminSecretPrefix"),
        ({"adminSecretPrefix": "cdcflow/admins/"}, "adminSecretPrefix"),
        ({"reconcileSchedule": "every 15 minutes"}, "reconcileSchedule"),
        ({"logLevel": "LOUD"}, "logLevel"),
        ({"apiThrottleRate": 0}, "apiThrottleRate"),
        ({"apiThrottleRate": "fast"}, "apiThrottleRate"),
        ({"apiThrottleBurst": -5}, "apiThrottleBurst"),
        ({"apiThrottleBurst": 2.5}, "apiThrottleBurst"),
        ({"apiReservedConcurrency": True}, "apiReservedConcurrency"),
        ({"apiReservedConcurrency": 901}, "apiReservedConcurrency"),
        ({"mskClusterArns": ["arn:aws:kafka:us-east-1:123456789012:topic/orders/x/t"]}, "mskClusterArns"),
        ({"mskClusterArns": "orders"}, "mskClusterArns"),
    ],
)
def test_bad_values_fail_naming_the_key(values, named):
    with pytest.raises(InvalidSetting, match=named):
        settings_from_values(values)


def test_schedule_and_level_overrides():
    settings = settings_from_values({"reconcileSchedule": "cron(0/5 * * * ? *)", "logLevel": "debug",
                                     "adminSecretPrefix": "team-db-admins/"})
    assert settings.reconcile_schedule == "cron(0/5 * * * ? *)"
    assert settings.log_level == "DEBUG"
    assert settings.admin_secret_prefix == "team-db-admins/"


def test_api_limits_default_and_accept_numbers_or_strings():
    defaults = settings_from_values({})
    assert (defaults.api_throttle_rate, defaults.api_throttle_burst, defaults.api_reserved_concurrency) == (50, 100, 10)
    settings = settings_from_values({"apiThrottleRate": "20", "apiThrottleBurst": 40, "apiReservedConcurrency": "5"})
    assert (settings.api_throttle_rate, settings.api_throttle_burst, settings.api_reserved_concurrency) == (20, 40, 5)


def test_database_ca_files_reach_the_functions_environment_and_must_be_absolute_paths():
    from infra.config import InvalidSetting, settings_from_values

    settings = settings_from_values({"databaseCaFile": "/opt/rds/global-bundle.pem",
                                     "connectDatabaseCaFile": "/etc/kafka/rds-bundle.pem"})
    assert (settings.database_ca_file, settings.connect_database_ca_file) == (
        "/opt/rds/global-bundle.pem", "/etc/kafka/rds-bundle.pem")
    assert settings_from_values({}).database_ca_file is None
    with pytest.raises(InvalidSetting, match="databaseCaFile must be an absolute file path"):
        settings_from_values({"databaseCaFile": "bundle.pem"})
