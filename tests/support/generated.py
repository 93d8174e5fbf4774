"""Generated input shared by the tiers: JSON values of every kind, and transformer bodies with
what the transformer must accept, written from its contract rather than its code."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def reference_parse(body: Any) -> list[dict[str, Any]] | None:
    """What the transformer must accept, written from its contract, not its code: an object
    whose `instances` is a non-empty list of objects with integral ids and a finite amount."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        return None
    if not body["instances"]:
        return None
    rows = []
    for instance in body["instances"]:
        if not isinstance(instance, dict):
            return None
        row = {}
        for field in ("customer_id", "merchant_id", "amount"):
            value = instance.get(field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if field == "amount" and abs(value) > 1.7976931348623157e308:
                return None
            if field != "amount":
                if isinstance(value, float) and value != int(value):
                    return None
                if not -(2**63) <= int(value) < 2**63:
                    return None
                value = int(value)
            else:
                value = float(value)
            row[field] = value
        rows.append(row)
    return rows


# Mostly well-formed transactions, each field sometimes anything at all: edges of the valid
# ranges, numbers past them, infinities, other types, or missing.
ODD = (
    JSON_SCALARS
    | st.floats()
    | st.integers(min_value=2**63 - 2, max_value=2**80)
    | st.integers(min_value=-(2**80), max_value=-(2**63) + 1)
    | st.integers(min_value=10**300, max_value=10**400)
    # Past INT64 but within what a JSON decoder reads as an integer (orjson: up to 2**64 - 1).
    | st.integers(min_value=2**63, max_value=2**64 - 1)
    | st.sampled_from([2**63, 2**64 - 1, -(2**63) - 1, 1e19, -1e19])
    | st.floats(min_value=2**62, max_value=2**70)
)
IDS = st.integers(min_value=-(2**63), max_value=2**63 - 1) | ODD
AMOUNTS = st.floats(allow_nan=False, allow_infinity=False) | ODD
INSTANCE = st.fixed_dictionaries(
    {},
    optional={"customer_id": IDS, "merchant_id": IDS, "amount": AMOUNTS, "extra": JSON_SCALARS},
) | st.fixed_dictionaries({"customer_id": IDS, "merchant_id": IDS, "amount": AMOUNTS})
BODIES = (
    st.fixed_dictionaries({"instances": st.lists(INSTANCE | JSON_SCALARS, max_size=4)})
    | st.fixed_dictionaries({"instances": JSON_VALUES})
    | JSON_VALUES
)
# Bodies the contract accepts: any INT64 ids (known entities or not) and any finite amount.
SCORABLE = st.fixed_dictionaries(
    {
        "instances": st.lists(
            st.fixed_dictionaries(
                {
                    "customer_id": st.integers(min_value=-(2**63), max_value=2**63 - 1),
                    "merchant_id": st.integers(min_value=-(2**63), max_value=2**63 - 1),
                    "amount": st.floats(allow_nan=False, allow_infinity=False),
                }
            ),
            min_size=1,
            max_size=4,
        )
    }
)
