"""Who may do what: the rules every route applies to its caller.

The caller is the IAM principal API Gateway authenticated (locally, the
principal whose SigV4 signature the local API verified), mapped to teams and
roles by the platform's principals table:

| role | may |
| --- | --- |
| requester | provision for its teams; list, describe, tear down its teams' pipelines |
| approver | list and describe its teams' pipelines; answer the reboot approvals of sources it approves for |
| admin | everything, including connections; never approve a reboot it requested itself |

A denial is `Forbidden` (403) naming what is missing, raised before the
route changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lambdas import principals
from lambdas.connections import Connection
from lambdas.identity import Unauthenticated, caller_arn
from lambdas.registry import RegistryEntry


class Forbidden(PermissionError):
    """The caller may not do what it asked; the message names the missing right."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Caller:
    arn: str
    teams: frozenset[str]
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def has(self, role: str) -> bool:
        return role in self.roles or self.is_admin

    def member_of(self, team: str) -> bool:
        return team in self.teams or self.is_admin


def caller_of(event: dict[str, Any]) -> Caller:
    """The registered principal behind a request; Forbidden when it is unsigned or unknown."""
    try:
        arn = caller_arn(event)
    except Unauthenticated as error:
        raise Forbidden(f"the request carries no caller identity: {error}") from None
    principal = principals.get_principal(arn)
    if principal is None:
        raise Forbidden(f"principal {arn} is not registered with cdcflow; ask a platform admin to add it")
    return Caller(principal.arn, frozenset(principal.teams), frozenset(principal.roles))


def owner_for_request(caller: Caller, requested: str | None) -> str:
    """The team a new pipeline belongs to: `requested`, or the caller's only team."""
    if requested is None:
        if len(caller.teams) != 1:
            teams = ", ".join(sorted(caller.teams)) or "none"
            raise Forbidden(f"name the owning team in 'owner' (your teams: {teams})", field="owner")
        (requested,) = caller.teams
    if not caller.member_of(requested):
        raise Forbidden(f"{caller.arn} is not a member of team {requested!r}", field="owner")
    if not caller.has("requester"):
        raise Forbidden(f"{caller.arn} lacks the requester role needed to provision pipelines", field="owner")
    return requested


def visible_owners(caller: Caller) -> frozenset[str] | None:
    """The owners whose pipelines the caller may list; None for every owner."""
    return None if caller.is_admin else caller.teams


def check_read(caller: Caller, entry: RegistryEntry) -> None:
    if not caller.member_of(entry.owner):
        raise Forbidden(f"{caller.arn} is not a member of team {entry.owner!r}, which owns pipeline "
                        f"{entry.pipeline_id!r}", field="id")


def check_change(caller: Caller, entry: RegistryEntry, action: str) -> None:
    check_read(caller, entry)
    if not caller.has("requester"):
        raise Forbidden(f"{caller.arn} lacks the requester role needed to {action} pipeline "
                        f"{entry.pipeline_id!r}", field="id")


def check_approve(caller: Caller, entry: RegistryEntry, source: Connection | None) -> None:
    """Approvers of the source's connection (default: the owning team's), never the requester themself."""
    if entry.requested_by is not None and entry.requested_by == caller.arn:
        raise Forbidden(f"{caller.arn} requested pipeline {entry.pipeline_id!r} and may not approve its own "
                        "reboot; another approver must", field="approved")
    if caller.is_admin:
        return
    if "approver" not in caller.roles:
        raise Forbidden(f"{caller.arn} lacks the approver role", field="approved")
    approver_teams = frozenset(source.setting("approver_teams") or ()) if source else frozenset()
    teams = approver_teams or frozenset({entry.owner})
    if "*" not in teams and not caller.teams & teams:
        name = source.name if source else "the source"
        raise Forbidden(f"{caller.arn} is not an approver for source connection {name!r} "
                        f"(approver teams: {', '.join(sorted(teams))})", field="approved")


def check_admin(caller: Caller, action: str) -> None:
    if not caller.is_admin:
        raise Forbidden(f"{caller.arn} lacks the admin role needed to {action}")
