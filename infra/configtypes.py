"""The value rules of stack config keys, and pydantic's errors as one-line messages.

Each rule is an `Annotated` type that carries `Allowed`: the phrase a bad value's message ends
with ("must be an integer from 1 to 10") and the short type the configuration reference shows.
`describe` turns a `ValidationError` into lines naming the key, the value and what is allowed;
secret values are never echoed.
"""

from __future__ import annotations

import ipaddress
import json
import re
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    StringConstraints,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

PROJECT = "mlops-platform"


class ConfigError(pulumi.RunError):
    """Bad stack config; Pulumi prints the message without a traceback."""


@dataclass(frozen=True)
class Allowed:
    """What a key accepts: the end of a bad value's message, and its type in the reference."""

    message: str
    type: str

    @staticmethod
    def integer(low: int, high: int) -> Allowed:
        return Allowed(f"must be an integer from {low} to {high}", f"integer {low} to {high}")

    @staticmethod
    def choice(*options: str) -> Allowed:
        return Allowed(f"must be one of {', '.join(options)}", " \\| ".join(options))


@dataclass(frozen=True)
class SecretKey:
    """Marks a field filled from a top-level secret key (`pulumi config set --secret <alias>`)."""

    # Whether the owner of an external service must supply it (bootstrap cannot generate it).
    supplied_with_external: bool = True
    # False for a credential only its owner knows (a registry token): never generated.
    generated: bool = True
    # What bootstrap generates: a random token, or an RSA private key ("rsa").
    kind: str = "token"
    # A valid value of this key around any token (str.format): placeholders and test values.
    shape: str = "{}"


class Model(BaseModel):
    """Frozen, camelCase keys, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel)
    # Unknown-key messages list the known keys sorted, or in the order the model declares them.
    known_keys_sorted: ClassVar[bool] = True


class Component(Model):
    """A component's section, read through `switch`: `enabled: false` makes it None."""


def checked(check: Callable[[Any], Any | None], message: str) -> BeforeValidator:
    """A rule written as a function that returns the accepted value, or None to refuse it."""

    def validate(value: Any) -> Any:
        result = check(value)
        if result is None:
            raise ValueError(message)
        return result

    return BeforeValidator(validate)


Flag = Annotated[bool, Strict(), Allowed("must be true or false", "boolean")]
Port = Annotated[int, Strict(), Field(ge=1, le=65535), Allowed.integer(1, 65535)]
Replicas = Annotated[int, Strict(), Field(ge=1, le=10), Allowed.integer(1, 10)]
Workers = Annotated[int, Strict(), Field(ge=1, le=16), Allowed.integer(1, 16)]
Share = Annotated[
    float, Field(gt=0, le=1), Allowed("must be a number above 0 and at most 1", "number in (0, 1]")
]
Deviations = Annotated[
    float,
    Field(gt=0, le=10),
    Allowed("must be a number above 0 and at most 10", "number in (0, 10]"),
]
Hours = Annotated[int, Strict(), Field(ge=1, le=720), Allowed.integer(1, 720)]
Rows = Annotated[int, Strict(), Field(ge=1, le=10_000_000), Allowed.integer(1, 10_000_000)]
Days = Annotated[int, Strict(), Field(ge=1, le=3650), Allowed.integer(1, 3650)]
KeepLast = Annotated[int, Strict(), Field(ge=1, le=100), Allowed.integer(1, 100)]

_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
QUANTITY_RULE = "must be a positive Kubernetes quantity such as 500m, 2, 512Mi or 10Gi"


def _quantity(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    return value if match and float(match.group(1)) > 0 else None


Quantity = Annotated[str, checked(_quantity, QUANTITY_RULE), Allowed(QUANTITY_RULE, "quantity")]
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
HOST = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
DnsLabel = Annotated[
    str,
    StringConstraints(pattern=DNS_LABEL),
    Allowed("must be a DNS-1123 label (a-z, 0-9, '-')", "DNS-1123 label"),
]
Host = Annotated[
    str,
    StringConstraints(pattern=HOST),
    Allowed("must be a host name or IP address", "host name"),
]
StorageClassName = Annotated[
    str,
    StringConstraints(pattern=HOST),
    Allowed("must be the name of a StorageClass", "StorageClass name"),
]
RoleName = Annotated[
    str, StringConstraints(pattern=DNS_LABEL), Allowed("must be a role name", "role name")
]
RegionName = Annotated[
    str, StringConstraints(pattern=DNS_LABEL), Allowed("must be a region name", "region name")
]
IngressClassName = Annotated[
    str,
    StringConstraints(pattern=DNS_LABEL),
    Allowed("must be an IngressClass name", "IngressClass name"),
]
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
IssuerName = Annotated[
    str,
    StringConstraints(pattern=DNS_SUBDOMAIN, max_length=253),
    Allowed("must be the name of a cert-manager issuer", "issuer name"),
]
BucketName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
    Allowed("must be an S3 bucket name (3-63 of a-z, 0-9, '.', '-')", "bucket name"),
]
Endpoint = Annotated[
    str,
    StringConstraints(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"),
    AfterValidator(lambda url: url.rstrip("/")),
    Allowed("must be an http(s) URL such as https://s3.example.com", "http(s) URL"),
]
IssuerUrl = Annotated[
    str,
    StringConstraints(pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$"),
    AfterValidator(lambda url: url.rstrip("/")),
    Allowed(
        "must be an https URL of an OpenID Connect issuer such as https://id.example.com/realms/ml",
        "https URL",
    ),
]
OidcClientId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._:@+-]{0,254}$"),
    Allowed(
        "must be an OAuth2 client id (up to 255 of A-Z, a-z, 0-9, '.', '_', ':', '@', '+', '-')",
        "client id",
    ),
]
# Five cron fields of numbers, ranges, lists, steps and '*' (no names or @-macros).
Cron = Annotated[
    str,
    StringConstraints(pattern=r"^(?:[0-9*/,-]+\s+){4}[0-9*/,-]+$"),
    Allowed(
        "must be a five-field cron schedule such as '*/15 * * * *' or '0 * * * *'",
        "five-field cron (UTC)",
    ),
]
FeastProject = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9_]{1,63}$"),
    Allowed("must be a Feast project name (a-z, 0-9, '_')", "Feast project name"),
]
Image = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
        r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
    ),
    Allowed("must be an image reference such as ghcr.io/acme/workloads:1.2.0", "image reference"),
]
ChartRepository = Annotated[
    str,
    StringConstraints(pattern=r"^(oci|https?)://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._/-]*)?$"),
    Allowed("must be an oci:// or http(s):// chart repository URL", "`oci://` or `http(s)://` URL"),
]
Registry = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*$"),
    Allowed(
        "must be a registry host such as registry.example.com or mirror.example.com:5000/hub",
        "registry host (and path)",
    ),
]
RegistryHost = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$"),
    Allowed(
        "must be a registry host such as ghcr.io or registry.example.com:5000",
        "registry host",
    ),
]
RegistryUser = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._@+-]{0,254}$"),
    Allowed(
        "must be a registry user name (up to 255 of A-Z, a-z, 0-9, '.', '_', '@', '+', '-')",
        "registry user name",
    ),
]
Duration = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]+(ms|s|m|h|d|w|y)$"),
    Allowed("must be a Prometheus duration such as 12h, 15d or 2w", "Prometheus duration"),
]

_HOST_PATTERN = re.compile(r"^[A-Za-z0-9*]([A-Za-z0-9*.-]{0,251}[A-Za-z0-9*])?(:([0-9]{1,5}|\*))?$")
_HOST_PATTERNS_RULE = (
    "must be a list of Host header patterns such as mlflow.example.com or *.example.com:*"
)
HostPatterns = Annotated[
    tuple[str, ...],
    checked(
        lambda v: (
            tuple(v)
            if isinstance(v, list) and all(isinstance(h, str) and _HOST_PATTERN.match(h) for h in v)
            else None
        ),
        _HOST_PATTERNS_RULE,
    ),
    Allowed(_HOST_PATTERNS_RULE, "list of Host patterns"),
]
_DNS_NAME = re.compile(DNS_SUBDOMAIN)


def _ingress_host(host: Any) -> bool:
    """A name an Ingress rule accepts: a DNS-1123 subdomain that is not an IP address."""
    if not isinstance(host, str) or len(host) > 253 or not _DNS_NAME.match(host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


_INGRESS_HOSTS_RULE = (
    "must be a non-empty list of distinct DNS names such as mlflow.example.com "
    "(lowercase; no IP address, port or wildcard)"
)
IngressHosts = Annotated[
    tuple[str, ...],
    checked(
        lambda v: (
            tuple(v)
            if isinstance(v, list) and v and len(set(v)) == len(v) and all(map(_ingress_host, v))
            else None
        ),
        _INGRESS_HOSTS_RULE,
    ),
    Allowed(_INGRESS_HOSTS_RULE, "list of DNS names"),
]
# `prefix/name` as Kubernetes accepts annotation keys (the prefix a DNS subdomain).
_ANNOTATION_KEY = re.compile(
    r"^(?:(?=[^/]{1,253}/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_ANNOTATIONS_RULE = (
    "must be a map of annotation names such as example.com/name to strings (quote true and numbers)"
)
Annotations = Annotated[
    dict[str, str],
    checked(
        lambda v: (
            dict(v)
            if isinstance(v, dict)
            and all(_ANNOTATION_KEY.match(k) and isinstance(t, str) for k, t in v.items())
            else None
        ),
        _ANNOTATIONS_RULE,
    ),
    Allowed(_ANNOTATIONS_RULE, "map of annotations"),
]
_NAME = re.compile(DNS_LABEL)
_NAMES_RULE = "must be a non-empty list of distinct names of up to 30 of a-z, 0-9, '-'"
Names = Annotated[
    tuple[str, ...],
    checked(
        lambda v: (
            tuple(v)
            if isinstance(v, list)
            and v
            and len(set(v)) == len(v)
            and all(isinstance(n, str) and _NAME.match(n) and len(n) <= 30 for n in v)
            else None
        ),
        _NAMES_RULE,
    ),
    Allowed(_NAMES_RULE, "list of names"),
]

# Secrets are written into server config files and URLs: printable, no quotes or spaces.
_SECRET_VALUE = re.compile(r"^[A-Za-z0-9!#$%&()*+,\-./:;<=>?@\[\]^_{|}~]{12,256}$")
SECRET_RULE = "must be 12 to 256 printable characters without spaces, quotes or backslashes"


class PlainText(str):
    """A secret key's value that the stack stores unencrypted."""


def _secret(value: Any) -> SecretStr:
    if isinstance(value, PlainText):
        raise PydanticCustomError("plain_secret", "stored in plain text")
    if not isinstance(value, str) or not _SECRET_VALUE.match(value):
        raise PydanticCustomError("secret_value", SECRET_RULE)
    return SecretStr(value)


Secret = Annotated[SecretStr, BeforeValidator(_secret), SecretKey()]
# The credential of a login the platform creates, also on an external server: always generated.
GeneratedSecret = Annotated[
    SecretStr, BeforeValidator(_secret), SecretKey(supplied_with_external=False)
]
# A credential another system issues (a registry token): bootstrap asks for it, never invents it.
SuppliedSecret = Annotated[SecretStr, BeforeValidator(_secret), SecretKey(generated=False)]

# flyteadmin parses its token signing key with x509.ParsePKCS1PrivateKey: PKCS#1 PEM only.
RSA_PEM = "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n"
_RSA_KEY = re.compile(
    r"^-----BEGIN RSA PRIVATE KEY-----\n(\S+\n)+-----END RSA PRIVATE KEY-----\n?$"
)
RSA_KEY_RULE = (
    "must be an RSA private key in PKCS#1 PEM (-----BEGIN RSA PRIVATE KEY-----), as "
    "`openssl genrsa -traditional 2048` writes it"
)


def _rsa_key(value: Any) -> SecretStr:
    if isinstance(value, PlainText):
        raise PydanticCustomError("plain_secret", "stored in plain text")
    if not isinstance(value, str) or len(value) > 16384 or not _RSA_KEY.match(value):
        raise PydanticCustomError("secret_value", RSA_KEY_RULE)
    return SecretStr(value if value.endswith("\n") else value + "\n")


RsaKey = Annotated[
    SecretStr,
    BeforeValidator(_rsa_key),
    SecretKey(supplied_with_external=False, kind="rsa", shape=RSA_PEM),
]


_SECRET_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/\S*)?$")
SECRET_URL_RULE = "must be an http(s) URL such as https://hooks.example.com/... " + (
    "of 12 to 256 printable characters without spaces, quotes or backslashes"
)


def _secret_url(value: Any) -> SecretStr:
    secret = _secret(value)
    if not _SECRET_URL.match(secret.get_secret_value()):
        raise PydanticCustomError("secret_value", SECRET_URL_RULE)
    return secret


# A URL that carries its own credential (a webhook or Slack incoming-webhook URL).
SuppliedSecretUrl = Annotated[SecretStr, BeforeValidator(_secret_url), SecretKey(generated=False)]

_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
EmailAddress = Annotated[
    str,
    StringConstraints(pattern=f"^{_EMAIL}$"),
    Allowed("must be an email address such as alerts@example.com", "email address"),
]
_EMAILS_RULE = "must be a non-empty list of distinct email addresses such as oncall@example.com"
EmailAddresses = Annotated[
    tuple[str, ...],
    checked(
        lambda v: (
            tuple(v)
            if isinstance(v, list)
            and v
            and len(set(v)) == len(v)
            and all(isinstance(a, str) and re.fullmatch(_EMAIL, a) for a in v)
            else None
        ),
        _EMAILS_RULE,
    ),
    Allowed(_EMAILS_RULE, "list of email addresses"),
]
HostPort = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?:[0-9]{1,5}$"),
    Allowed("must be host:port such as smtp.example.com:587", "host:port"),
]
SlackChannel = Annotated[
    str,
    StringConstraints(pattern=r"^[#@]?[a-z0-9][a-z0-9._-]{0,79}$"),
    Allowed("must be a Slack channel such as #alerts (a-z, 0-9, '.', '_', '-')", "Slack channel"),
]
SmtpUser = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._@+-]{0,254}$"),
    Allowed(
        "must be an SMTP login (up to 255 of A-Z, a-z, 0-9, '.', '_', '@', '+', '-')",
        "SMTP login",
    ),
]


def refuse(key: str, value: Any, allowed: str) -> PydanticCustomError:
    """What a model's own check raises about one of its keys: `describe` names that key."""
    return PydanticCustomError("key_rule", allowed, {"key": key, "value": value})


def reveal(value: SecretStr) -> pulumi.Output[str]:
    """A secret config value as a Pulumi secret: what components put into Kubernetes Secrets."""
    return pulumi.Output.secret(value.get_secret_value())


# ---- walking models ---------------------------------------------------------------------------


def _annotated(annotation: Any) -> Iterator[Any]:
    """Every metadata item and model class inside an annotation (Optional, Annotated)."""
    origin = get_origin(annotation)
    if origin is Literal:
        yield Allowed.choice(*get_args(annotation))
    elif origin is Annotated:
        base, *extras = get_args(annotation)
        yield from extras
        yield from _annotated(base)
    elif origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            yield from _annotated(arg)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation


def _parts(field: FieldInfo) -> list[Any]:
    return [*field.metadata, *_annotated(field.annotation)]


def model_of(field: FieldInfo) -> type[Model] | None:
    """The model a field holds (through Optional), if it holds one."""
    return next((p for p in _parts(field) if isinstance(p, type) and issubclass(p, Model)), None)


def allowed_of(field: FieldInfo) -> Allowed | None:
    return next((p for p in _parts(field) if isinstance(p, Allowed)), None)


def secret_of(field: FieldInfo) -> SecretKey | None:
    return next((p for p in _parts(field) if isinstance(p, SecretKey)), None)


def by_alias(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {field.alias or name: field for name, field in model.model_fields.items()}


def secret_fields(root: type[Model]) -> list[tuple[str, str, SecretKey]]:
    """(path of the section holding it, secret key, marker) of every secret field below the
    root: a component's own ("redis") or a nested optional section's ("images.pullSecret")."""
    found = []

    def walk(model: type[BaseModel], path: list[str]) -> None:
        for name, field in by_alias(model).items():
            marker = secret_of(field)
            if marker is not None and path:
                found.append((".".join(path), name, marker))
            nested = model_of(field)
            if nested is not None:
                walk(nested, [*path, name])

    walk(root, [])
    return found


def model_at(root: type[Model], path: str) -> type[Model]:
    """The model of a dotted key path below the root ("images.pullSecret")."""
    model = root
    for key in path.split("."):
        nested = model_of(by_alias(model)[key])
        if nested is None:
            raise KeyError(f"{path} is not a section")
        model = nested
    return model


def known_keys(model: type[Model]) -> list[str]:
    keys = [key for key, field in by_alias(model).items() if secret_of(field) is None]
    if issubclass(model, Component):
        keys.append("enabled")
    return sorted(keys) if model.known_keys_sorted else keys


# ---- messages ---------------------------------------------------------------------------------


PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def show(value: object) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value)


def line(key: str, value: object, allowed: str) -> str:
    return f"{PROJECT}:{key} = {show(value)}: {allowed}"


def key_path(parts: list[str]) -> str:
    """A key path as a message shows it: dotted, with a key that is not a plain name (one the
    user mistyped: spaces, dots, a line break) quoted, so every problem stays one line."""
    return ".".join(part if PLAIN_KEY.fullmatch(part) else json.dumps(part) for part in parts)


def describe(error: ValidationError, root: type[Model], stack: str) -> list[str]:
    """One line per error: the key, its value and what is allowed."""
    secret_names = [name for _, name, _ in secret_fields(root)]
    return [_describe(e, root, stack, secret_names) for e in error.errors()]


def _describe(e: Any, root: type[Model], stack: str, secret_names: list[str]) -> str:
    loc = [str(part) for part in e["loc"]]
    key = key_path(loc)
    parent, field = root, None
    for part in loc:
        field = by_alias(parent).get(part)
        section = model_of(field) if field is not None else None
        if section is None:
            break
        parent = section
    kind = e["type"]
    if field is not None and secret_of(field) is not None:
        name = loc[-1]
        give = f'printf %s "$VALUE" | mlops secrets set {stack} {name}'
        if kind == "missing":
            state = "enabled" if issubclass(parent, Component) else "set"
            marker = secret_of(field)
            how = f"generate it: mlops secrets bootstrap {stack}, or give it: {give}"
            return (
                f"{PROJECT}:{name} is not set (required while {'.'.join(loc[:-1])} is {state}); "
                + (how if marker is not None and marker.generated else f"give it: {give}")
            )
        if kind == "plain_secret":
            return (
                f"{PROJECT}:{name} is stored in plain text: it must be a secret; "
                f"give it as one: {give}"
            )
        # The rule's own message (never the value), or the common one for a wrong type.
        rule = e["msg"] if kind == "secret_value" else SECRET_RULE
        return f"{PROJECT}:{name} = [secret]: {rule}"
    if kind == "extra_forbidden":
        known = known_keys(parent) + (secret_names if parent is root else [])
        return line(key, e["input"], f"unknown key; known keys: {', '.join(known)}")
    if kind == "missing":
        return f"{PROJECT}:{key} is not set: required when {key.rsplit('.', 1)[0]} is set"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return line(key, e["input"], "must be an object")
    if kind == "switch":
        return line(f"{key}.enabled", e["input"].get("enabled"), e["msg"])
    if kind == "key_rule":
        return line(f"{key}.{key_path([str(e['ctx']['key'])])}", e["ctx"]["value"], e["msg"])
    if kind == "switch_external":
        return line(f"{key}.enabled", False, f"must be true when {key}.external is set")
    allowed = allowed_of(field) if field is not None else None
    return line(key, e["input"], allowed.message if allowed else e["msg"])
