"""Bad input, generated: stack config, transformer bodies and backup files that nobody listed.

Each property states what must hold for every input Hypothesis generates (the profile in
tests/conftest.py makes the runs the same every time): a value is accepted or refused with a
message that names it, never a traceback, never a secret in plain text; an altered backup file
is refused and leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra import config
from tests.support.generated import BODIES, JSON_VALUES, SCORABLE, reference_parse
from tests.support.rendering import SENTINELS, raw_config
from workloads.backup import crypto

P = config.PROJECT
# A problem line: `mlops-platform:<key path> = <value>: <what is allowed>`, or the key alone for
# a key that is missing; one line, whatever the key or value holds.
PROBLEM = re.compile(rf"^{P}:.+: \S[^\n]*$")


def _laid_out() -> dict[str, Any]:
    raw, keys = raw_config({"profile": "small"})
    return config.load("dev", raw, keys).model_dump(by_alias=True, mode="json", exclude_none=False)


def _paths(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of the laid-out config, objects and leaves alike."""
    found: list[tuple[str, ...]] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found.append((*prefix, key))
            found += _paths(value, (*prefix, key))
    return found


LAID_OUT = _laid_out()
SECRET_KEYS = tuple(sorted(SENTINELS))
PATHS = tuple(p for p in _paths(LAID_OUT) if p[0] not in SENTINELS and p[-1] not in SENTINELS)


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    for key in reversed(path[1:]):
        value = {key: value}
    return {path[0]: value}


def _problems(error: config.ConfigError) -> list[str]:
    message = str(error)
    assert message.startswith("invalid stack config:\n  "), message
    return message.removeprefix("invalid stack config:\n  ").split("\n  ")


@settings(max_examples=400)
@given(
    path=st.sampled_from(PATHS)
    | st.tuples(st.sampled_from(PATHS), st.text(min_size=1, max_size=12)).map(
        lambda pair: (*pair[0], pair[1])
    ),
    value=JSON_VALUES,
)
def test_any_config_value_is_loaded_or_refused_naming_its_key(
    path: tuple[str, ...], value: Any
) -> None:
    raw, keys = raw_config(_nest(path, value))
    try:
        config.load("dev", raw, keys)
    except config.ConfigError as error:
        problems = _problems(error)
        assert all(PROBLEM.match(p) for p in problems), problems
        assert "Traceback" not in str(error)
        # The first line is about the section of the key that was set, or about a secret that
        # section needs (the sentinel values are placeholders, not every key's valid value).
        named = problems[0].removeprefix(f"{P}:")
        assert named.startswith((f"{path[0]}.", f"{path[0]} ", *SECRET_KEYS)), (path, problems)


@settings(max_examples=200)
@given(
    key=st.sampled_from(SECRET_KEYS),
    value=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=6, max_size=60
    ),
    other=st.sampled_from(PATHS),
)
def test_a_secret_value_never_appears_in_a_config_message(
    key: str, value: str, other: tuple[str, ...]
) -> None:
    # The secret set to the generated value, and some other key broken so that a message is
    # certain: the secret must not be in it, whatever it is.
    raw, keys = raw_config(_nest(other, {"not": "valid"}), {**SENTINELS, key: value})
    with pytest.raises(config.ConfigError) as caught:
        config.load("dev", raw, keys)
    assert value not in str(caught.value)
    assert json.dumps(value) not in str(caught.value)


@settings(max_examples=600)
@given(body=BODIES | SCORABLE)
def test_any_transformer_body_is_parsed_or_refused_naming_the_field(body: Any) -> None:
    pytest.importorskip("kserve", reason="the transformer needs the workloads dependency group")
    from kserve.errors import InvalidInput

    from workloads.serving.transformer import parse_instances

    expected = reference_parse(body)
    try:
        rows = parse_instances(body)
    except InvalidInput as error:
        assert expected is None, (body, error.reason)
        reason = error.reason
        assert "Traceback" not in reason
        assert re.search(r"instances|customer_id|merchant_id|amount|body", reason), reason
    else:
        assert rows == expected, body


@settings(max_examples=150)
@given(
    plain=st.binary(max_size=300),
    change=st.one_of(
        st.tuples(st.just("cut"), st.integers(min_value=0)),
        st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(1, 255)),
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=40)),
        st.tuples(st.just("drop"), st.integers(min_value=0), st.integers(1, 40)),
        st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=40)),
    ),
)
def test_any_altered_backup_file_is_refused_and_leaves_nothing_behind(
    plain: bytes, change: tuple[Any, ...]
) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        # Chunks of 64 bytes: a few hundred bytes make several chunks, as gigabytes do.
        patch.setattr(crypto, "CHUNK", 64)
        work = Path(tmp)
        source, sealed, target = work / "dump", work / "dump.enc", work / "restored"
        source.write_bytes(plain)
        crypto.encrypt(source, sealed, "the-stack-key")
        data = bytearray(sealed.read_bytes())
        kind, *args = change
        if kind == "cut":
            data = data[: args[0] % len(data)]
        elif kind == "flip":
            data[args[0] % len(data)] ^= args[1]
        elif kind == "append":
            data += args[0]
        elif kind == "drop":
            at = args[0] % len(data)
            del data[at : at + args[1]]
        else:
            data[args[0] % len(data) : args[0] % len(data)] = args[1]
        sealed.write_bytes(bytes(data))
        target.write_bytes(b"the restore before")
        with pytest.raises(crypto.DecryptionError) as caught:
            crypto.decrypt(sealed, target, "the-stack-key")
        assert sealed.name in str(caught.value)
        # A restore that fails keeps what was there, and leaves no partial file beside it.
        assert target.read_bytes() == b"the restore before"
        assert sorted(p.name for p in work.iterdir()) == ["dump", "dump.enc", "restored"]
