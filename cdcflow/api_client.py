"""A client of the pipelines API, signing its requests with SigV4 when given an AWS session.

The same client talks to the local API server and to API Gateway, both of
which refuse unsigned requests; every failure is one of three exceptions:
`ApiRefused` (4xx, nothing was started), `ServiceFailed` (5xx) or
`ServiceUnreachable` (no answer), each naming the URL or the API's message.
`ExecuteApiAuth` signs any `requests` call the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import botocore.session
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ProfileNotFound

from cdcflow.errors import ServiceFailed, ServiceUnreachable

DEFAULT_API_URL = "http://127.0.0.1:8700"
API_TIMEOUT_SECONDS = 30


class ApiRefused(Exception):
    """The API answered with a 4xx: the request was wrong; nothing was started."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(body.get("message") or f"HTTP {status}")
        self.status = status
        self.body = body


_EXECUTE_API_HOST = re.compile(r"^https://[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")
DEFAULT_REGION = "us-east-1"


def signing_region(base_url: str, session: boto3.Session) -> str:
    """The region a request to `base_url` is signed for: an execute-api URL's own, else the session's."""
    match = _EXECUTE_API_HOST.match(base_url)
    return match.group(1) if match else (session.region_name or DEFAULT_REGION)


class ExecuteApiAuth(requests.auth.AuthBase):
    """Signs a `requests` request with SigV4 for API Gateway (`execute-api`), with a session's credentials."""

    def __init__(self, session: boto3.Session, region: str | None = None) -> None:
        credentials = session.get_credentials()
        if credentials is None:
            raise ServiceUnreachable("no AWS credentials found to sign requests to the pipelines API")
        self._credentials = credentials
        self._region = region or session.region_name or DEFAULT_REGION

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        body = prepared.body
        if body is not None and not isinstance(body, bytes | str):
            raise TypeError("only bodies given as bytes or str can be signed")
        aws_request = AWSRequest(method=prepared.method, url=prepared.url, data=body, headers=dict(prepared.headers))
        SigV4Auth(self._credentials.get_frozen_credentials(), "execute-api", self._region).add_auth(aws_request)
        prepared.headers.update(dict(aws_request.headers))
        return prepared


def profile_session(profile: str, *, credentials_file: Path | None = None, region: str | None = None) -> boto3.Session:
    """A boto3 session with `profile`'s credentials, from `credentials_file` instead of ~/.aws/credentials if given.

    The profile is explicit, so AWS_ACCESS_KEY_ID and the like in the
    environment do not override it. Raises ProfileNotFound when neither the
    config nor the credentials file has it.
    """
    core = botocore.session.Session()
    if credentials_file is not None:
        core.set_config_variable("credentials_file", str(credentials_file))
    session = boto3.Session(botocore_session=core, profile_name=profile, region_name=region or DEFAULT_REGION)
    if session.get_credentials() is None:
        raise ProfileNotFound(profile=profile)
    return session


@dataclass
class PipelinesApi:
    """A client of the pipelines API. Signs requests with SigV4 when given an AWS session."""

    base_url: str
    session: boto3.Session | None = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._http = requests.Session()

    def _request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None
    ) -> dict[str, Any]:
        url = self.base_url + path
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        prepared = requests.Request(method, url, params=params, data=data, headers=headers).prepare()
        if self.session is not None:
            self._sign(prepared)
        try:
            response = self._http.send(prepared, timeout=API_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise ServiceUnreachable(
                f"cannot reach the pipelines API at {self.base_url}: {type(error).__name__}"
            ) from None
        try:
            document = response.json()
        except ValueError:
            document = {"message": response.text[:500]}
        if response.status_code >= 500:
            request_id = document.get("request_id")
            raise ServiceFailed(
                f"the pipelines API at {self.base_url} failed with HTTP {response.status_code}"
                + (f" (request id {request_id})" if request_id else "")
            )
        if response.status_code >= 400:
            raise ApiRefused(response.status_code, document if isinstance(document, dict) else {})
        return document

    def _sign(self, prepared: requests.PreparedRequest) -> None:
        assert self.session is not None
        ExecuteApiAuth(self.session, signing_region(self.base_url, self.session))(prepared)

    def provision(self, spec: Any) -> dict[str, Any]:
        return self._request("POST", "/pipelines", body=spec)

    def list_pipelines(
        self,
        *,
        status: str | None = None,
        owner: str | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        params = {"status": status, "owner": owner, "limit": str(limit) if limit else None, "next_token": next_token}
        return self._request("GET", "/pipelines", params={k: v for k, v in params.items() if v is not None})

    def describe(self, pipeline_id: str) -> dict[str, Any]:
        return self._request("GET", f"/pipelines/{quote(pipeline_id, safe='')}")

    def teardown(self, pipeline_id: str, *, keep_topics: bool, keep_index: bool = False) -> dict[str, Any]:
        return self._request(
            "DELETE",
            f"/pipelines/{quote(pipeline_id, safe='')}",
            params={"keep_topics": "true" if keep_topics else "false", "keep_index": "true" if keep_index else "false"},
        )

    def answer_approval(self, pipeline_id: str, *, approved: bool, comment: str | None) -> dict[str, Any]:
        decision: dict[str, Any] = {"approved": approved}
        if comment:
            decision["comment"] = comment
        return self._request("POST", f"/pipelines/{quote(pipeline_id, safe='')}/approval", body=decision)

    def pause(self, pipeline_id: str) -> dict[str, Any]:
        return self._request("POST", f"/pipelines/{quote(pipeline_id, safe='')}/pause")

    def resume(self, pipeline_id: str) -> dict[str, Any]:
        return self._request("POST", f"/pipelines/{quote(pipeline_id, safe='')}/resume")

    def resync(self, pipeline_id: str, tables: list[str] | None = None,
               where: dict[str, str] | None = None, *, rebuild: bool = False) -> dict[str, Any]:
        """POST `/pipelines/{id}/resync`: starts ResyncPipeline (all captured tables when `tables` is None), or with
        `rebuild` RebuildPipeline (a BROKEN pipeline: a new slot, every table snapshotted again)."""
        body: dict[str, Any] = {"rebuild": True} if rebuild else {"where": where or {}}
        if tables and not rebuild:
            body["tables"] = tables
        return self._request("POST", f"/pipelines/{quote(pipeline_id, safe='')}/resync", body=body)

    def update(self, pipeline_id: str, spec: Any, *, patch: bool = False, keep_topics: bool = False) -> dict[str, Any]:
        """PATCH (part of a team's spec, merged) or PUT (the whole) `/pipelines/{id}`: starts UpdatePipeline."""
        return self._request("PATCH" if patch else "PUT", f"/pipelines/{quote(pipeline_id, safe='')}",
                             params={"keep_topics": "true"} if keep_topics else None, body=spec)

    # Connections: registered by platform admins, listed for the teams that may use them.

    def register_connection(self, connection: Any) -> dict[str, Any]:
        return self._request("POST", "/connections", body=connection)

    def list_connections(self, *, kind: str | None = None) -> dict[str, Any]:
        return self._request("GET", "/connections", params={"kind": kind} if kind else None)

    def describe_connection(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/connections/{quote(name, safe='')}")

    def remove_connection(self, name: str) -> dict[str, Any]:
        return self._request("DELETE", f"/connections/{quote(name, safe='')}")
