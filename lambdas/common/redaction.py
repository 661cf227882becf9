"""Keep known secret values out of log lines and error messages.

`lambdas.secrets` registers every password it reads or generates with
`remember_secret`; from then on `redact` replaces that value with `****`
wherever it appears. The log formatter and the step handler's error path both
go through `redact`, so a password that slips into a message (a driver's
error, an echoed config) is masked before it leaves the process.
"""

from __future__ import annotations

import logging
import threading

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

MASK = "****"
# Masking one- to three-character values would shred every log line; no real password is that short.
MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_known_secrets: frozenset[str] = frozenset()


def remember_secret(value: str) -> None:
    """Mask `value` in every later log line and error message of this process."""
    global _known_secrets
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        _known_secrets = _known_secrets | {value}


def forget_secrets() -> None:
    """Drop every remembered value (tests only)."""
    global _known_secrets
    with _lock:
        _known_secrets = frozenset()


def redact(text: str) -> str:
    """`text` with every remembered secret value replaced by `****`."""
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_exception(error: BaseException) -> None:
    """Mask remembered secrets in the string arguments of `error` (its message), in place."""
    error.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in error.args)


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter whose output never carries a remembered secret.

    Redacting the formatted line covers the message, appended keys, `extra`
    fields and the formatted exception alike.
    """

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingFilter(logging.Filter):
    """A filter for plain `logging` handlers (libraries' loggers) that masks remembered secrets.

    It renders the message and any exception text up front, so the handler's
    formatter only sees the redacted versions.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known_secrets:
            return True
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_root_filter() -> None:
    """Add a `RedactingFilter` to every handler of the root logger that lacks one (idempotent)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())

