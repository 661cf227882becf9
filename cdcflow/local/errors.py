"""Errors of the local stack: each one is a single line that names the cause."""


class LocalStackError(Exception):
    """The local stack could not do what was asked; the message is one line for a person."""


class PortTaken(LocalStackError):
    """Something that is not this stack already listens on a port a service needs."""

    def __init__(self, service: str, listener: str, port: int, holder: str | None = None) -> None:
        by = f" ({holder})" if holder else ""
        super().__init__(
            f"port {port} needed by {service} is already in use by another process{by}: "
            f"stop it, or choose another port with CDCFLOW_LOCAL_{listener.upper()}_PORT"
        )
        self.service = service
        self.port = port


class ToolMissing(LocalStackError):
    """A program the stack needs (Java 17, Maven, PostgreSQL's server) is not installed."""


class FetchFailed(LocalStackError):
    """Maven could not resolve the service jars."""


class ServiceFailed(LocalStackError):
    """A service exited or did not become ready in time."""

    def __init__(self, service: str, problem: str, log_path: object) -> None:
        super().__init__(f"{service} {problem}; see {log_path}")
        self.service = service
