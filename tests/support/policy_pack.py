"""What the policy pack's tests share."""

from __future__ import annotations

from pathlib import Path

POLICY_PACK = Path(__file__).resolve().parents[2] / "policy"

# The platform renders no NetworkPolicy yet: the coverage rule's check of the platform's own
# stacks expects it to fail (strictly) and the ci preview runs the rule as advisory. Set True
# once the stacks render NetworkPolicies.
NETWORK_POLICIES_RENDERED = False
