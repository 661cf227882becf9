"""IAM (SigV4) authorization of a request, as API Gateway does it for the local API server.

API Gateway answers a request to an IAM-authorized method before the function
runs: no signature, an unknown access key, a signature that does not match
or a request signed more than 15 minutes away from now are 403s with its own
messages. `authorize` does the same for the local API: it recomputes the
signature with botocore's SigV4 signer over the request as received (method,
path, query, the headers the client signed, the body's hash, `X-Amz-Date`;
service `execute-api`, the region of the credential scope) with the secret of
the access key from the local credentials store, compares the two with
`hmac.compare_digest`, and on success gives the caller's identity as API
Gateway puts it in `requestContext.identity`.

Not supported locally (refused with a message saying so): signatures in the
query string (presigned URLs), session tokens (the local users have none),
and the `Date` header instead of `X-Amz-Date`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from cdcflow.local.credentials import CredentialStore, LocalCredential
from statemachines.catalogue import LOCAL_ACCOUNT

SERVICE = "execute-api"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

MISSING_TOKEN = "Missing Authentication Token"
INVALID_TOKEN = "The security token included in the request is invalid."
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details."
)

_BAD_SIGNATURE = "InvalidSignatureException"
_PARAMETER = re.compile(r"\s*([A-Za-z]+)=([^,\s]*)\s*")


@dataclass(frozen=True)
class Refused:
    """Why the request is not authorized: API Gateway's 403, its message and its `x-amzn-ErrorType`."""

    message: str
    error_type: str = "IncompleteSignatureException"
    status: int = 403


@dataclass(frozen=True)
class Authorized:
    """The verified caller: the local user whose key signed the request."""

    credential: LocalCredential

    def identity(self, *, source_ip: str, user_agent: str | None) -> dict[str, Any]:
        """`requestContext.identity` as API Gateway fills it for an IAM user's signed request."""
        return {
            "cognitoIdentityPoolId": None,
            "cognitoIdentityId": None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "principalOrgId": None,
            "accountId": LOCAL_ACCOUNT,
            "accessKey": self.credential.access_key_id,
            "caller": self.credential.user_id,
            "user": self.credential.user_id,
            "userArn": self.credential.arn,
            "sourceIp": source_ip,
            "userAgent": user_agent,
        }


class _Verifier(SigV4Auth):
    """botocore's signer, signing exactly the headers the client named in SignedHeaders."""

    def __init__(self, credentials: Credentials, region: str, signed: list[tuple[str, str]]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        header_map = HTTPHeaders()
        for name, value in self._signed:
            header_map[name] = value
        return header_map


def _header_values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]


def _authorization_parameters(value: str) -> dict[str, str] | Refused:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return Refused(f"Authorization header must be signed with {ALGORITHM} (SigV4), got {algorithm[:40]!r}")
    parameters: dict[str, str] = {}
    for part in rest.split(","):
        match = _PARAMETER.fullmatch(part)
        if match is None:
            return Refused(f"Invalid key=value pair in Authorization header: {part.strip()[:80]!r}")
        parameters[match[1]] = match[2]
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if name not in parameters]
    if missing:
        return Refused(" ".join(f"Authorization header requires '{name}' parameter." for name in missing))
    return parameters


def authorize(
    method: str,
    raw_target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    store: CredentialStore,
    now: datetime | None = None,
) -> Authorized | Refused:
    """Whether the request is signed by a known local user, as API Gateway's IAM authorization decides.

    `raw_target` is the request line's target as received (path and query,
    still percent-encoded), `headers` every header as received. Reads the
    store, changes nothing.
    """
    now = now or datetime.now(UTC)
    authorizations = _header_values(headers, "authorization")
    if not authorizations:
        if "x-amz-signature=" in raw_target.lower() or "x-amz-credential=" in raw_target.lower():
            return Refused("the local API does not take signatures in the query string: sign the Authorization "
                           "header")
        return Refused(MISSING_TOKEN, "MissingAuthenticationTokenException")
    if len(authorizations) > 1:
        return Refused("the request has more than one Authorization header")
    parameters = _authorization_parameters(authorizations[0])
    if isinstance(parameters, Refused):
        return parameters

    scope = parameters["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return Refused(f"Credential should be <access key id>/<date>/<region>/{SERVICE}/aws4_request, got "
                       f"{'/'.join(scope[1:])[:80]!r}")
    access_key_id, scope_date, region, service, _ = scope
    if service != SERVICE:
        return Refused(f"Credential should be scoped to correct service: '{SERVICE}'. ")
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        return Refused(f"Credential should be scoped to a valid region, not {region[:40]!r}. ")
    credential = store.lookup(access_key_id)
    if credential is None:
        return Refused(INVALID_TOKEN, "UnrecognizedClientException")
    if _header_values(headers, "x-amz-security-token"):
        # The local users have long-term keys only; a session token names credentials this API never issued.
        return Refused(INVALID_TOKEN, "UnrecognizedClientException")

    dates = _header_values(headers, "x-amz-date")
    if len(dates) != 1:
        return Refused("Authorization header requires existence of a 'X-Amz-Date' header (the local API does not "
                       "take 'Date'). Authorization=" + ALGORITHM)
    amz_date = dates[0].strip()
    try:
        signed_at = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return Refused(f"Date must be in ISO-8601 'basic format'. Got '{amz_date[:40]}'. See "
                       "http://en.wikipedia.org/wiki/ISO_8601")
    if scope_date != amz_date[:8]:
        return Refused(f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                       f"'{scope_date[:8]}' != '{amz_date[:8]}', from '{amz_date}'.")
    stamp = now.strftime(AMZ_DATE_FORMAT)
    if signed_at < now - MAX_SKEW:
        return Refused(f"Signature expired: {amz_date} is now earlier than "
                       f"{(now - MAX_SKEW).strftime(AMZ_DATE_FORMAT)} ({stamp} - 15 min.)", _BAD_SIGNATURE)
    if signed_at > now + MAX_SKEW:
        return Refused(f"Signature not yet current: {amz_date} is still later than "
                       f"{(now + MAX_SKEW).strftime(AMZ_DATE_FORMAT)} ({stamp} + 15 min.)", _BAD_SIGNATURE)

    signed_names = parameters["SignedHeaders"].split(";")
    if "host" not in signed_names:
        return Refused(f"{SIGNATURE_MISMATCH} (SignedHeaders must include host)", _BAD_SIGNATURE)
    signed = [(name, value) for name in signed_names for value in _header_values(headers, name)]
    if {name for name, _ in signed} != set(signed_names):
        return Refused(SIGNATURE_MISMATCH, _BAD_SIGNATURE)
    body_hash = hashlib.sha256(body).hexdigest()
    declared_hashes = _header_values(headers, "x-amz-content-sha256")
    if any(declared.strip() != body_hash for declared in declared_hashes):
        # botocore would take the declared hash on trust; the body must be the one that was signed.
        return Refused(SIGNATURE_MISMATCH, _BAD_SIGNATURE)

    host = _header_values(headers, "host")[0]
    request = AWSRequest(method=method, url=f"http://{host}{raw_target}", data=body)
    request.context["timestamp"] = amz_date
    verifier = _Verifier(Credentials(credential.access_key_id, credential.secret_access_key), region, signed)
    expected = verifier.signature(verifier.string_to_sign(request, verifier.canonical_request(request)), request)
    if not hmac.compare_digest(expected.encode(), parameters["Signature"].encode()):
        return Refused(SIGNATURE_MISMATCH, _BAD_SIGNATURE)
    return Authorized(credential)

