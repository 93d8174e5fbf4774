"""The machinery that reads raw stack config: one error per bad key, unknown keys flagged.

`Section` reads one config object; every bad value is recorded in `Errors` with its key, the
value and what is allowed, so `infra.config.load` can report them all in one message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import pulumi

PROJECT = "mlops-platform"

QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
ALLOWED_HOST = re.compile(r"^[A-Za-z0-9*]([A-Za-z0-9*.-]{0,251}[A-Za-z0-9*])?(:([0-9]{1,5}|\*))?$")
ENDPOINT = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")
# Five cron fields of numbers, ranges, lists, steps and '*' (no names or @-macros).
CRON = re.compile(r"^(?:[0-9*/,-]+\s+){4}[0-9*/,-]+$")
FEAST_PROJECT = re.compile(r"^[a-z0-9_]{1,63}$")
IMAGE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
CHART_REPOSITORY = re.compile(r"^(oci|https?)://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._/-]*)?$")
REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*$")
DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")
# Secrets are written into server config files and URLs: printable, no quotes or spaces.
SECRET_VALUE = re.compile(r"^[A-Za-z0-9!#$%&()*+,\-./:;<=>?@\[\]^_{|}~]{12,256}$")


class ConfigError(pulumi.RunError):
    """Bad stack config; Pulumi prints the message without a traceback."""


T = TypeVar("T")


def _show(value: object) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)


class Errors:
    def __init__(self, stack: str) -> None:
        self.stack = stack
        self.messages: list[str] = []

    def add(self, key: str, value: object, allowed: str) -> None:
        self.messages.append(f"{PROJECT}:{key} = {_show(value)}: {allowed}")

    def required(self, key: str, when: str) -> None:
        self.messages.append(f"{PROJECT}:{key} is not set: required when {when} is set")

    def missing(self, key: str, needed_by: str) -> None:
        self.messages.append(
            f"{PROJECT}:{key} is not set (required while {needed_by} is enabled); "
            f"run ./scripts/bootstrap-secrets.sh {self.stack} "
            f"or: pulumi config set --secret {key} <value> --stack {self.stack}"
        )


class Section:
    """Reads one config object, recording an error per bad key and flagging unknown keys."""

    def __init__(self, path: str, data: Mapping[str, Any], errors: Errors) -> None:
        self.path = path
        self.data = data
        self.errors = errors
        self.read: set[str] = set()

    def _key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, default: T, check: Callable[[Any], T | None], allowed: str) -> T:
        self.read.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        result = check(value)
        if result is None:
            self.errors.add(self._key(name), value, allowed)
            return default
        return result

    def text(self, name: str, default: str, pattern: re.Pattern[str], allowed: str) -> str:
        return self.get(
            name, default, lambda v: v if isinstance(v, str) and pattern.match(v) else None, allowed
        )

    def required_text(self, name: str, pattern: re.Pattern[str], allowed: str) -> str:
        """A key this section cannot do without."""
        if name not in self.data:
            self.read.add(name)
            self.errors.required(self._key(name), self.path)
            return ""
        return self.text(name, "", pattern, allowed)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        return self.get(
            name,
            default,
            lambda v: v if v in choices else None,
            f"must be one of {', '.join(choices)}",
        )

    def flag(self, name: str, default: bool) -> bool:
        return self.get(name, default, _as_bool, "must be true or false")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return self.get(
            name,
            default,
            lambda v: (
                v if isinstance(v, int) and not isinstance(v, bool) and low <= v <= high else None
            ),
            f"must be an integer from {low} to {high}",
        )

    def quantity(self, name: str, default: str) -> str:
        return self.get(
            name,
            default,
            _as_quantity,
            "must be a positive Kubernetes quantity such as 500m, 2, 512Mi or 10Gi",
        )

    def section(self, name: str) -> Section | None:
        self.read.add(name)
        if name not in self.data:
            return None
        value = self.data[name]
        if not isinstance(value, dict):
            self.errors.add(self._key(name), value, "must be an object")
            return None
        return Section(self._key(name), value, self.errors)

    def finish(self, allowed: tuple[str, ...] | None = None) -> None:
        for name in sorted(set(self.data) - self.read):
            known = ", ".join(allowed if allowed is not None else sorted(self.read))
            self.errors.add(self._key(name), self.data[name], f"unknown key; known keys: {known}")


def _as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _as_quantity(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not QUANTITY.match(value):
        return None
    return value if float(QUANTITY.match(value).group(1)) > 0 else None  # type: ignore[union-attr]


def parse_raw(raw: Mapping[str, str], secret_names: Collection[str]) -> dict[str, Any]:
    """Strips the project namespace and decodes JSON values (Pulumi passes objects as JSON).

    Secrets are kept as the strings they are.
    """
    data: dict[str, Any] = {}
    for full_key, text in raw.items():
        namespace, _, key = full_key.rpartition(":")
        if namespace != PROJECT:
            continue
        if key in secret_names:
            data[key] = text
            continue
        try:
            data[key] = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            data[key] = text
    return data


def read_secret(
    data: Mapping[str, Any], secret_keys: frozenset[str], key: str, needed_by: str, errors: Errors
) -> pulumi.Output[str] | None:
    if key not in data:
        errors.missing(key, needed_by)
        return None
    value = data[key]
    if f"{PROJECT}:{key}" not in secret_keys:
        errors.messages.append(
            f"{PROJECT}:{key} is stored in plain text: it must be a secret; "
            f"run: pulumi config set --secret {key} <value> --stack {errors.stack}"
        )
        return None
    if not isinstance(value, str) or not SECRET_VALUE.match(value):
        errors.messages.append(
            f"{PROJECT}:{key} = [secret]: must be 12 to 256 printable characters "
            "without spaces, quotes or backslashes"
        )
        return None
    return pulumi.Output.secret(value)
