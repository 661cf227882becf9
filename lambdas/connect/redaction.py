"""Keep passwords out of messages that come back from Kafka Connect.

Connect echoes connector config values in validation errors and connectors
put them in stack traces (a JDBC URL, a failed setting). Every text that
leaves this package through an exception or a log line goes through `redact`.
"""

import re
from collections.abc import Iterable, Mapping

MASK = "********"

# `database.password=s3cret`, `"connection.password": "s3cret"`, `password: s3cret`
_PASSWORD_SETTING = re.compile(
    r"""(?P<key>[\w.\-]*password["']?\s*[=:]\s*)(?P<value>"[^"]*"|'[^']*'|[^\s,;}&]+)""",
    re.IGNORECASE,
)
# Connect's ConfigException: `Invalid value s3cret for configuration database.password: ...`
_INVALID_PASSWORD_VALUE = re.compile(
    r"(?P<lead>Invalid value )(?P<value>.*?)(?P<tail> for configuration [\w.\-]*password)",
    re.IGNORECASE | re.DOTALL,
)


def password_values(config: Mapping[str, object]) -> list[str]:
    """The values of every `*password` setting in a connector config (the secrets to mask)."""
    return [str(value) for key, value in config.items() if key.lower().endswith("password") and value]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret value and every password-looking setting masked.

    Known values are masked wherever they appear; password settings are masked
    by shape even when the value is not known to the caller.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _INVALID_PASSWORD_VALUE.sub(lambda m: f"{m['lead']}{MASK}{m['tail']}", text)
    return _PASSWORD_SETTING.sub(lambda m: f"{m['key']}{MASK}", text)
