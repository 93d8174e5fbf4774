"""The policy pack: the rules of rules.py as Pulumi policies, all mandatory.

    pulumi preview --policy-pack policy

Building the PolicyPack starts the analyzer server and never returns, so it happens only here;
tests import rules.py. Objects from Helm releases are not seen: the engine sees one release.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import rules
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def is_kubernetes_object(resource_type: str) -> bool:
    return resource_type.startswith("kubernetes:") and resource_type != HELM_RELEASE


def resource_validation(
    check: Callable[[Mapping[str, Any]], Sequence[str]],
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not is_kubernetes_object(args.resource_type):
            return
        name = (args.props.get("metadata") or {}).get("name") or args.name
        for message in check(args.props):
            report_violation(f"{args.props.get('kind')} {name}: {message}", None)

    return validate


def network_policy_coverage(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    objects = [r for r in args.resources if is_kubernetes_object(r.resource_type)]
    uncovered = {id(o) for o in rules.uncovered_workloads([r.props for r in objects])}
    for resource in objects:
        if id(resource.props) in uncovered:
            report_violation(rules.uncovered_message(resource.props), resource.urn)


PolicyPack(
    name="mlops-platform",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        *(
            ResourceValidationPolicy(
                name=name, description=description, validate=resource_validation(check)
            )
            for name, (description, check) in rules.RESOURCE_RULES.items()
        ),
        StackValidationPolicy(
            name="network-policy-coverage",
            description=rules.STACK_RULES["network-policy-coverage"][0],
            validate=network_policy_coverage,
            enforcement_level=EnforcementLevel.MANDATORY,
        ),
    ],
)
