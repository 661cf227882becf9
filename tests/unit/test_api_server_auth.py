"""IAM (SigV4) authorization of the local API server, through a real server: only signed requests reach the handler."""

import http.client
import json
from datetime import UTC, datetime, timedelta

import boto3
import botocore.auth
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cdcflow.api_client import ExecuteApiAuth, PipelinesApi
from cdcflow.api_server import api_url, serve_api
from cdcflow.iam_auth import INVALID_TOKEN, MISSING_TOKEN, SIGNATURE_MISMATCH
from cdcflow.local.credentials import LocalCredential
from tests.unit.factories import ADMIN, LOCAL_USERS, api_auth, credential_store

pytestmark = pytest.mark.unit

REQUESTER = LOCAL_USERS["cdcflow-orders-requester"]


@pytest.fixture
def handled():
    return []


@pytest.fixture
def api(handled):
    """A real local API server whose handler records the events that reach it."""

    def handler(event, context):
        handled.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"caller": event["requestContext"]["identity"]["userArn"]})}

    server = serve_api(0, handler=handler, credentials=credential_store())
    yield api_url(server)
    server.shutdown()
    server.server_close()


def signed_headers(method: str, url: str, body: bytes = b"", *, credential: LocalCredential = ADMIN,
                   secret: str | None = None, region: str = "us-east-1", service: str = "execute-api",
                   headers: dict[str, str] | None = None, token: str | None = None) -> dict[str, str]:
    """The headers botocore adds to sign `method url body` (host and X-Amz-Date signed, and `headers`)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    keys = Credentials(credential.access_key_id, secret if secret is not None else credential.secret_access_key, token)
    SigV4Auth(keys, service, region).add_auth(request)
    return dict(request.headers)


def send(url: str, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict, dict]:
    """One request with exactly these headers and body (what a tampering client would send)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")
    finally:
        connection.close()


def approval(url: str) -> tuple[str, bytes, dict[str, str]]:
    target, body = "/pipelines/orders/approval?comment=ok", b'{"approved": true}'
    return target, body, {"Content-Type": "application/json"}


def test_a_signed_request_reaches_the_handler_with_the_callers_identity(api, handled):
    target, body, headers = approval(api)
    headers = {**headers, **signed_headers("POST", api + target, body, credential=REQUESTER, headers=headers)}

    status, _, answer = send(api, "POST", target, headers, body)

    assert status == 200
    assert answer == {"caller": "arn:aws:iam::000000000000:user/cdcflow-orders-requester"}
    identity = handled[0]["requestContext"]["identity"]
    assert identity["accessKey"] == REQUESTER.access_key_id
    assert identity["accountId"] == "000000000000"
    assert identity["user"] == identity["caller"] == REQUESTER.user_id
    assert identity["user"].startswith("AIDA")
    assert identity["sourceIp"] == "127.0.0.1"
    assert "userAgent" in identity
    assert REQUESTER.secret_access_key not in json.dumps(handled[0])


def test_the_client_signs_through_requests_and_the_pipelines_api_client(api, handled):
    assert requests.get(f"{api}/pipelines?status=ACTIVE&owner=team-orders", auth=api_auth(), timeout=10).ok
    client = PipelinesApi(api, session=boto3.Session(aws_access_key_id=REQUESTER.access_key_id,
                                                     aws_secret_access_key=REQUESTER.secret_access_key,
                                                     region_name="eu-west-1"))
    assert client.answer_approval("ord ers", approved=True, comment="fine") == {
        "caller": "arn:aws:iam::000000000000:user/cdcflow-orders-requester"}
    assert [event["path"] for event in handled] == ["/pipelines", "/pipelines/ord ers/approval"]


def test_an_unsigned_request_is_missing_its_token(api, handled):
    target, body, headers = approval(api)

    status, response_headers, answer = send(api, "POST", target, headers, body)

    assert status == 403
    assert answer == {"message": MISSING_TOKEN}
    assert response_headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert handled == []


@pytest.mark.parametrize("body", [b'{"where": {"public.orders": "id > 0"}}', b'{"rebuild": true}'])
def test_an_unsigned_resync_or_rebuild_never_reaches_the_handler(api, handled, body):
    status, _, answer = send(api, "POST", "/pipelines/orders/resync", {"Content-Type": "application/json"}, body)

    assert status == 403 and answer == {"message": MISSING_TOKEN}
    assert handled == []


def test_a_wrong_secret_is_a_signature_mismatch(api, handled):
    target, body, headers = approval(api)
    headers = {**headers, **signed_headers("POST", api + target, body, secret="not-the-secret", headers=headers)}

    status, response_headers, answer = send(api, "POST", target, headers, body)

    assert status == 403
    assert answer == {"message": SIGNATURE_MISMATCH}
    assert response_headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert handled == []


def test_an_unknown_access_key_is_an_invalid_token(api, handled):
    stranger = LocalCredential("stranger", "AKIASTRANGER00000000", "whatever")
    target, body, headers = approval(api)
    headers = {**headers, **signed_headers("POST", api + target, body, credential=stranger, headers=headers)}

    status, _, answer = send(api, "POST", target, headers, body)

    assert status == 403
    assert answer == {"message": INVALID_TOKEN}
    assert handled == []


def test_a_session_token_is_not_one_the_local_api_issued(api, handled):
    headers = signed_headers("GET", f"{api}/pipelines", token="FwoGZXIvYXdzEXAMPLE")

    status, _, answer = send(api, "GET", "/pipelines", headers)

    assert status == 403
    assert answer == {"message": INVALID_TOKEN}
    assert handled == []


@pytest.mark.parametrize("tamper", ["body", "path", "query", "method", "signed header"])
def test_a_request_changed_after_signing_is_refused(api, handled, tamper):
    target, body, headers = approval(api)
    headers = {**headers, **signed_headers("POST", api + target, body, headers=headers)}
    method = "POST"
    if tamper == "body":
        body = b'{"approved": false}'
    elif tamper == "path":
        target = target.replace("/orders/", "/payments/")
    elif tamper == "query":
        target = target.replace("comment=ok", "comment=ko")
    elif tamper == "method":
        method = "PUT"
    else:
        headers["Content-Type"] = "application/json; charset=utf-8"

    status, _, answer = send(api, method, target, headers, body)

    assert status == 403
    assert answer == {"message": SIGNATURE_MISMATCH}
    assert handled == []


def test_a_declared_body_hash_must_be_the_bodys(api, handled):
    target, body, headers = approval(api)
    signed_for = b'{"approved": false}'
    declared = {**headers, "X-Amz-Content-SHA256": botocore.auth.sha256(signed_for).hexdigest()}
    headers = {**declared, **signed_headers("POST", api + target, signed_for, headers=declared)}

    status, _, answer = send(api, "POST", target, headers, body)

    assert status == 403
    assert answer == {"message": SIGNATURE_MISMATCH}
    assert handled == []


@pytest.mark.parametrize("minutes, word", [(-16, "expired"), (16, "not yet current")])
def test_a_request_signed_more_than_15_minutes_away_is_refused(api, handled, monkeypatch, minutes, word):
    signed_at = datetime.now(UTC) + timedelta(minutes=minutes)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at.replace(tzinfo=None))
    target, body, headers = approval(api)
    headers = {**headers, **signed_headers("POST", api + target, body, headers=headers)}

    status, _, answer = send(api, "POST", target, headers, body)

    assert status == 403
    assert answer["message"].startswith(f"Signature {word}: {signed_at.strftime('%Y%m%dT%H%M%SZ')}")
    assert handled == []


def test_a_request_signed_a_little_while_ago_is_taken(api, handled, monkeypatch):
    signed_at = datetime.now(UTC) - timedelta(minutes=14)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at.replace(tzinfo=None))

    assert requests.get(f"{api}/pipelines", auth=api_auth(), timeout=10).status_code == 200


def test_a_signature_for_another_service_is_refused(api, handled):
    headers = signed_headers("GET", f"{api}/pipelines", service="s3")

    status, _, answer = send(api, "GET", "/pipelines", headers)

    assert status == 403
    assert "execute-api" in answer["message"]
    assert handled == []


@pytest.mark.parametrize("authorization, named", [
    ("Bearer abc", "AWS4-HMAC-SHA256"),
    ("AWS4-HMAC-SHA256 Credential=AKIATEST000000000000/20261202/us-east-1/execute-api/aws4_request",
     "'SignedHeaders' parameter"),
])
def test_a_malformed_authorization_header_is_refused_naming_the_problem(api, handled, authorization, named):
    status, _, answer = send(api, "GET", "/pipelines", {"Authorization": authorization,
                                                        "X-Amz-Date": "20261202T000000Z"})

    assert status == 403
    assert named in answer["message"]
    assert handled == []


def test_the_region_comes_from_the_credential_scope(api, handled):
    assert requests.get(f"{api}/pipelines", auth=api_auth(region="ap-southeast-2"), timeout=10).status_code == 200


def test_a_key_added_to_the_credentials_file_is_known_without_a_restart(tmp_path, handled):
    from cdcflow.local.credentials import CredentialStore, ensure_credentials, new_credential

    path = tmp_path / "credentials"
    ensure_credentials(path)
    server = serve_api(0, handler=lambda event, context: {"statusCode": 204, "body": ""},
                       credentials=CredentialStore.from_file(path))
    try:
        extra = new_credential("cdcflow-extra")
        session = boto3.Session(aws_access_key_id=extra.access_key_id,
                                aws_secret_access_key=extra.secret_access_key, region_name="us-east-1")
        url = f"{api_url(server)}/pipelines"
        assert requests.get(url, auth=ExecuteApiAuth(session), timeout=10).status_code == 403
        with path.open("a") as file:
            file.write(f"\n[cdcflow-extra]\naws_access_key_id = {extra.access_key_id}\n"
                       f"aws_secret_access_key = {extra.secret_access_key}\n")
        assert requests.get(url, auth=ExecuteApiAuth(session), timeout=10).status_code == 204
    finally:
        server.shutdown()
        server.server_close()
