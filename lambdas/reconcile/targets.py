"""The dependencies a sweep visits (source databases, Connect and Kafka clusters): grouping and failures.

A sweep visits each dependency once, whatever the number of pipelines on it,
so pipelines are grouped by where they live; a dependency that cannot be used
raises one of `TARGET_ERRORS`, which the sweep reports (`describe`) and goes
on from. Anything else is a bug and ends the sweep.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from kafka.errors import KafkaError

from lambdas.common.failures import translate
from lambdas.common.redaction import redact
from lambdas.errors import StepError

TARGET_ERRORS = (StepError, psycopg.Error, BotoCoreError, ClientError, KafkaError)

T = TypeVar("T")


def grouped(items: Iterable[T], key: Callable[[T], str]) -> Iterator[tuple[str, list[T]]]:
    """`items` grouped by `key`, groups in key order, items in their original order."""
    groups: dict[str, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    yield from sorted(groups.items())


def describe(exc: BaseException) -> str:
    """`ClassName: message` of the named error `exc` stands for, with known secrets masked."""
    named = translate(exc)
    return redact(f"{type(named).__name__}: {named}")
