"""A small client for the Kafka Connect REST API.

Every call has a bounded timeout and maps failures onto the errors the state
machines route on:

- no answer, a 5xx, or 409 (a rebalance or a concurrent config change is in
  progress) -> `ConnectUnavailable`, which the `connect` Retry policy retries;
- 400 (the config failed validation) -> `ConnectorConfigInvalid`, Connect's
  message with passwords masked;
- 404 -> `ConnectorNotFound`, except where a missing connector is an answer
  (`get_config`, `delete`);
- any other 4xx -> `ConnectRequestRejected`.

No request or response body is logged, and no exception carries a password.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Self
from urllib.parse import quote

import requests

from lambdas.connect.errors import ConnectorConfigInvalid, ConnectorNotFound, ConnectRequestRejected
from lambdas.connect.redaction import password_values, redact
from lambdas.errors import ConnectUnavailable

logger = logging.getLogger(__name__)

# (connect, read) seconds: a Lambda step must fail fast and leave the retry to the state machine.
DEFAULT_TIMEOUT = (3.05, 15.0)
# How cdcflow's Secrets Manager ConfigProvider ends the errors another try cannot mend (its UNRESOLVABLE).
UNRESOLVABLE_REFERENCE = "the secret reference cannot be resolved"


class ConnectClient:
    """Talks to one Kafka Connect cluster at `base_url` (e.g. `http://127.0.0.1:8083`).

    Every method makes at most one HTTP request and blocks for at most the
    timeout; none retries on its own.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session or requests.Session()

    def __repr__(self) -> str:
        return f"ConnectClient({self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connectors -----------------------------------------------------

    def list_connectors(self) -> list[str]:
        """Names of every connector on the cluster."""
        return sorted(self._request("GET", "/connectors"))

    def list_with_statuses(self) -> dict[str, dict[str, Any]]:
        """Every connector on the cluster with its status document, from one request.

        Connect's `GET /connectors?expand=status` (Kafka 2.3+, KIP-465).
        """
        expanded = self._request("GET", "/connectors", params={"expand": "status"})
        return {name: (info or {}).get("status") or {} for name, info in (expanded or {}).items()}

    def get_config(self, name: str) -> dict[str, str] | None:
        """The stored config of connector `name` (including its `name` key), or None when absent."""
        response = self._send("GET", f"/connectors/{_segment(name)}/config", allow={404})
        return None if response.status_code == 404 else response.json()

    def put_config(self, name: str, config: Mapping[str, str]) -> dict[str, Any]:
        """Create connector `name` or replace its config; returns Connect's connector info.

        Connect validates the config first; a rejection raises
        `ConnectorConfigInvalid` and leaves the connector as it was.
        """
        return self._request(
            "PUT", f"/connectors/{_segment(name)}/config", json=dict(config), secrets=password_values(config)
        )

    def get_status(self, name: str) -> dict[str, Any]:
        """The connector's status: `{"name", "connector": {"state", "trace"?}, "tasks": [...], "type"}`."""
        return self._request("GET", f"/connectors/{_segment(name)}/status")

    def delete(self, name: str) -> bool:
        """Ask Connect to delete connector `name`; True if it existed, False if it was already gone.

        Connect removes the connector asynchronously; see `deploy.delete_connector` to wait for it.
        """
        response = self._send("DELETE", f"/connectors/{_segment(name)}", allow={404})
        return response.status_code != 404

    def restart(self, name: str, *, include_tasks: bool = True, only_failed: bool = True) -> None:
        """Restart the connector and, with `include_tasks`, its tasks (only the FAILED ones by default)."""
        params = {"includeTasks": str(include_tasks).lower(), "onlyFailed": str(only_failed).lower()}
        self._send("POST", f"/connectors/{_segment(name)}/restart", params=params)

    def pause(self, name: str) -> None:
        """Pause the connector and its tasks (asynchronous on Connect's side)."""
        self._send("PUT", f"/connectors/{_segment(name)}/pause")

    def stop(self, name: str) -> bool:
        """Stop the connector and shut its tasks down (asynchronous); False if it does not exist.

        A stopped connector keeps its config and offsets; only a stopped one may have its offsets reset.
        """
        return self._send("PUT", f"/connectors/{_segment(name)}/stop", allow={404}).status_code != 404

    def reset_offsets(self, name: str) -> bool:
        """Delete the stored offsets of a STOPPED connector (Kafka 3.6+, KIP-875); False if it does not exist.

        For a source connector these are the positions it resumes from; for a
        sink connector, its consumer group's committed offsets.
        """
        return self._send("DELETE", f"/connectors/{_segment(name)}/offsets", allow={404}).status_code != 404

    def offsets(self, name: str) -> list[dict[str, Any]] | None:
        """The connector's committed offsets (Kafka 3.5+, KIP-875): `[{"partition", "offset"}, ...]`; None if it
        does not exist, or the worker does not serve offsets (an older Connect)."""
        response = self._send("GET", f"/connectors/{_segment(name)}/offsets", allow={404, 405})
        if response.status_code in (404, 405) or not response.content:
            return None
        return list(response.json().get("offsets") or [])

    def resume(self, name: str) -> None:
        """Resume a paused connector (asynchronous on Connect's side)."""
        self._send("PUT", f"/connectors/{_segment(name)}/resume")

    # -- plugins --------------------------------------------------------

    def plugins(self) -> list[dict[str, Any]]:
        """The installed connector plugins: `[{"class", "type", "version"}, ...]`."""
        return self._request("GET", "/connector-plugins")

    def validate(self, connector_class: str, config: Mapping[str, str]) -> dict[str, Any]:
        """Connect's validation of `config` for a plugin, without creating anything.

        Returns `{"name", "error_count", "configs": [{"definition": {...}, "value": {...}}]}`;
        the echoed values are Connect's, so callers must not log them.
        """
        return self._request(
            "PUT",
            f"/connector-plugins/{_segment(connector_class)}/config/validate",
            json={"connector.class": connector_class, **config},
            secrets=password_values(config),
        )

    # -- transport ------------------------------------------------------

    def _request(self, method: str, path: str, *, secrets: Iterable[str] = (), **kwargs: Any) -> Any:
        response = self._send(method, path, secrets=secrets, **kwargs)
        return response.json() if response.content else None

    def _send(
        self,
        method: str,
        path: str,
        *,
        allow: frozenset[int] | set[int] = frozenset(),
        secrets: Iterable[str] = (),
        **kwargs: Any,
    ) -> requests.Response:
        url = self.base_url + path
        try:
            response = self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ConnectUnavailable(
                f"Kafka Connect at {self.base_url} did not answer {method} {path}: {type(exc).__name__}"
            ) from None
        if response.status_code < 400 or response.status_code in allow:
            return response
        message = redact(_error_message(response), secrets)
        logger.warning("Kafka Connect answered %s %s with %s", method, path, response.status_code)
        where = f"Kafka Connect {method} {path} -> {response.status_code}"
        if response.status_code >= 500 and UNRESOLVABLE_REFERENCE in message:
            # The worker's ConfigProvider cannot read a secret the config references: no retry mends that.
            raise ConnectorConfigInvalid(f"{where}: {message}")
        if response.status_code == 409 or response.status_code >= 500:
            raise ConnectUnavailable(f"{where}: {message}")
        if response.status_code == 400:
            raise ConnectorConfigInvalid(f"{where}: {message}")
        if response.status_code == 404:
            raise ConnectorNotFound(f"{where}: {message}")
        raise ConnectRequestRejected(f"{where}: {message}")


def _segment(value: str) -> str:
    """`value` quoted as one URL path segment."""
    return quote(value, safe="")


def _error_message(response: requests.Response) -> str:
    """Connect's `{"error_code", "message"}` body as text, or the start of whatever came back."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason or ""
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return str(body)[:500]
