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
