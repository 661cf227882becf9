"""The local users' shared-credentials file: made once, private, kept; readable by boto3; registered as principals."""

import re
import stat

import pytest

from cdcflow.api_client import profile_session
from cdcflow.local.credentials import (
    PROFILES, CredentialsFileInvalid, CredentialStore, ensure_credentials, parse_credentials, read_credentials,
    register_principals,
)
from lambdas.principals import get_principal

pytestmark = pytest.mark.unit


def test_the_file_is_created_private_with_one_random_key_per_profile(tmp_path):
    path = tmp_path / "state" / "credentials"

    users = ensure_credentials(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(users) == set(PROFILES)
    assert len({user.access_key_id for user in users.values()}) == len(PROFILES)
    for profile, user in users.items():
        assert re.fullmatch(r"AKIA[A-Z2-7]{16}", user.access_key_id)
        assert len(user.secret_access_key) == 40
        assert user.arn == f"arn:aws:iam::000000000000:user/{profile}"
        assert user.secret_access_key not in repr(user)
    assert read_credentials(path) == users


def test_the_keys_are_kept_across_restarts_and_a_widened_mode_is_narrowed(tmp_path):
    path = tmp_path / "credentials"
    first = ensure_credentials(path)
    path.chmod(0o644)

    assert ensure_credentials(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_missing_profile_is_added_and_the_others_kept(tmp_path):
    path = tmp_path / "credentials"
    first = ensure_credentials(path)
    kept = {profile: user for profile, user in first.items() if profile != "cdcflow-payments-approver"}
    path.write_text("".join(f"[{p}]\naws_access_key_id = {u.access_key_id}\naws_secret_access_key = "
                            f"{u.secret_access_key}\n" for p, u in kept.items()))

    again = ensure_credentials(path)

    assert {profile: again[profile] for profile in kept} == kept
    assert again["cdcflow-payments-approver"] != first["cdcflow-payments-approver"]


def test_boto3_signs_with_a_profile_of_the_file(tmp_path, monkeypatch):
    path = tmp_path / "credentials"
    users = ensure_credentials(path)
    # An explicit profile wins over keys in the environment, as the AWS tools' own resolution does.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")

    credentials = profile_session("cdcflow-orders-approver", credentials_file=path).get_credentials()

    assert credentials.access_key == users["cdcflow-orders-approver"].access_key_id
    assert credentials.secret_key == users["cdcflow-orders-approver"].secret_access_key


def test_a_profile_the_file_lacks_is_named(tmp_path):
    from botocore.exceptions import ProfileNotFound

    path = tmp_path / "credentials"
    ensure_credentials(path)
    with pytest.raises(ProfileNotFound, match="cdcflow-nobody"):
        profile_session("cdcflow-nobody", credentials_file=path)


def test_a_file_that_is_not_a_credentials_file_is_named(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("aws_access_key_id = AKIA\n")
    with pytest.raises(CredentialsFileInvalid, match=str(path)):
        read_credentials(path)


def test_the_store_finds_users_by_access_key_and_profiles_without_keys_are_ignored():
    users = parse_credentials("[a]\naws_access_key_id = AKIAA\naws_secret_access_key = s1\n[b]\nregion = x\n")
    store = CredentialStore(users.values())

    assert store.lookup("AKIAA") == users["a"]
    assert store.lookup("AKIAB") is None
    assert set(users) == {"a"}


def test_the_local_users_are_registered_with_their_teams_and_roles(principals_table, tmp_path):
    users = ensure_credentials(tmp_path / "credentials")

    register_principals(users)
    register_principals(users)

    admin = get_principal(users["cdcflow-admin"].arn)
    assert admin.is_admin and admin.teams == frozenset()
    requester = get_principal(users["cdcflow-orders-requester"].arn)
    assert requester.teams == {"team-orders"} and requester.roles == {"requester"}
    approver = get_principal(users["cdcflow-payments-approver"].arn)
    assert approver.teams == {"team-payments"} and approver.roles == {"approver"}
