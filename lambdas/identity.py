"""Who is calling: the IAM principal API Gateway authenticated, read from the proxy event.

The API's methods are IAM-authorized (SigV4), so API Gateway has checked the
signature before the function runs and puts the caller in
`requestContext.identity`. The local API server verifies signatures the same
way and fills the same fields (`cdcflow/iam_auth.py`), so this module reads
both alike.

Principals are compared in one normal form: a role's session
(`arn:aws:sts::<account>:assumed-role/<role>/<session>`) is its role
(`arn:aws:iam::<account>:role/<role>`), whatever the session is called, and a
role's path is dropped (`role/ops/deployer` is `role/deployer`: a session ARN
never carries the path, and role names are unique in an account whatever
their path). Every other ARN is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# arn:<partition>:<service>:<region>:<account>:<resource>; IAM and STS ARNs have no region.
_ARN = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc)"
    r":(?P<service>iam|sts)::(?P<account>\d{12}):(?P<resource>[\x21-\x7e]{1,1024})"
)
# IAM names: letters, digits and +=,.@_- ; paths: /-separated segments of the same characters.
_NAME = r"[A-Za-z0-9_+=,.@-]{1,128}"
_ROLE = re.compile(rf"role/(?:{_NAME}/)*(?P<role>{_NAME})")
_ASSUMED_ROLE = re.compile(rf"assumed-role/(?P<role>{_NAME})/(?P<session>{_NAME})")


class Unauthenticated(Exception):
    """The request carries no IAM identity: the API refuses it before any route runs."""


def normalise_principal(arn: str) -> str:
    """The principal `arn` names, in the form the principals table is keyed by.

    `arn:aws:sts::A:assumed-role/R/S` and `arn:aws:iam::A:role/<path>/R` become
    `arn:aws:iam::A:role/R`; users (with or without a path), root and other
    IAM/STS ARNs are returned unchanged. Raises ValueError naming the value
    when it is not an IAM or STS ARN.
    """
    if not isinstance(arn, str):
        raise ValueError(f"a principal must be an IAM or STS ARN, got {type(arn).__name__}")
    match = _ARN.fullmatch(arn)
    if match is None:
        raise ValueError(f"not an IAM or STS ARN: {arn[:200]!r}")
    partition, service, account, resource = match.group("partition", "service", "account", "resource")
    if service == "sts" and resource.startswith("assumed-role/"):
        session = _ASSUMED_ROLE.fullmatch(resource)
        if session is None:
            raise ValueError(f"not an assumed-role ARN (assumed-role/<role>/<session>): {arn[:200]!r}")
        return f"arn:{partition}:iam::{account}:role/{session['role']}"
    if service == "iam" and resource.startswith("role/"):
        role = _ROLE.fullmatch(resource)
        if role is None:
            raise ValueError(f"not a role ARN (role/[<path>/]<name>): {arn[:200]!r}")
        return f"arn:{partition}:iam::{account}:role/{role['role']}"
    return arn


def caller_arn(event: Mapping[str, Any]) -> str:
    """The normalised ARN of the principal that signed the request (`requestContext.identity.userArn`).

    Raises Unauthenticated when the event has no IAM identity or its ARN is
    not one: an API method without IAM authorization, or a request that did
    not pass through it.
    """
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    identity = context.get("identity") if isinstance(context, Mapping) else None
    user_arn = identity.get("userArn") if isinstance(identity, Mapping) else None
    if not user_arn:
        raise Unauthenticated("the request carries no IAM identity (requestContext.identity.userArn): sign it "
                              "with SigV4")
    try:
        return normalise_principal(user_arn)
    except ValueError as error:
        raise Unauthenticated(f"the request's identity is not an IAM principal: {error}") from None
