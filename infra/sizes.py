"""Container sizes: a container's requests and limits, and Kubernetes quantities as numbers.

Stack config, the profiles, the pod specs and the monitoring declarations all speak in these
shapes, so they sit in the config layer, below everything that reads them.
"""

from __future__ import annotations

import re

from infra.configtypes import Model, Quantity

_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}


def quantity(text: str) -> float:
    """A Kubernetes quantity as a number: "250m" is 0.25 (cores), "512Mi" is 536870912."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return float(match.group(1)) * _FACTORS[match.group(2)]


class Quantities(Model):
    cpu: Quantity
    memory: Quantity


class Resources(Model):
    """A container's requests and limits, shaped as in a pod spec (and in stack config)."""

    requests: Quantities
    limits: Quantities

    @staticmethod
    def of(cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str) -> Resources:
        return Resources(
            requests=Quantities(cpu=cpu_request, memory=memory_request),
            limits=Quantities(cpu=cpu_limit, memory=memory_limit),
        )
