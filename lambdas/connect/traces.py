"""Short, redacted summaries of the Java stack traces Kafka Connect reports for failed connectors."""

from collections.abc import Iterable

from lambdas.connect.redaction import redact

MAX_SUMMARY_CHARS = 500
_CAUSE = "Caused by:"
_LINK = " <- caused by: "


def summarise_trace(trace: str, secrets: Iterable[str] = (), limit: int = MAX_SUMMARY_CHARS) -> str:
    """The exception line and its `Caused by` chain, passwords masked, at most `limit` characters.

    Stack frames and `... n more` lines are dropped. When the chain is too
    long, the outermost exception and the root cause are kept, as they say
    what failed and why.
    """
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    chain = [lines[0]] + [line[len(_CAUSE):].strip() for line in lines[1:] if line.startswith(_CAUSE)]
    chain = [redact(part, secrets) for part in chain]
    summary = _LINK.join(chain)
    if len(summary) > limit and len(chain) > 2:
        summary = f"{chain[0]}{_LINK}...{_LINK}{chain[-1]}"
    if len(summary) > limit:
        summary = summary[: limit - 1] + "…"
    return summary
