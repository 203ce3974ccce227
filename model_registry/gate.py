"""The quality gate: may a candidate version replace production? Pure function, no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

GATE_METRIC = "test_accuracy"


@dataclass(frozen=True)
class GatePolicy:
    min_accuracy: float = 0.85
    max_regression: float = 0.02


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def evaluate_gate(candidate: Mapping[str, float], production: Mapping[str, float] | None,
                  policy: GatePolicy, *, production_version: str | None = None) -> GateDecision:
    """Promote only a candidate that reaches the minimum and is not worse than production by more
    than the margin. A production version without the metric does not block (nothing to compare)."""
    score = candidate.get(GATE_METRIC)
    if score is None or math.isnan(score):
        return GateDecision(False, f"candidate has no {GATE_METRIC} metric; cannot judge it")
    if score < policy.min_accuracy:
        return GateDecision(
            False, f"{GATE_METRIC} {score:.4f} is below the minimum {policy.min_accuracy:.4f}"
        )
    current = None if production is None else production.get(GATE_METRIC)
    label = f"production v{production_version}" if production_version else "production"
    if current is None or math.isnan(current):
        return GateDecision(
            True, f"{GATE_METRIC} {score:.4f} reaches the minimum {policy.min_accuracy:.4f}; "
            f"no {label} {GATE_METRIC} to compare with"
        )
    floor = current - policy.max_regression
    # A tiny tolerance keeps 0.95 - 0.02 == 0.93 from failing on float rounding.
    if score < floor - 1e-12:
        return GateDecision(
            False, f"{GATE_METRIC} {score:.4f} is worse than {label} ({current:.4f}) by more than "
            f"the margin {policy.max_regression:.4f}"
        )
    return GateDecision(
        True, f"{GATE_METRIC} {score:.4f} reaches the minimum {policy.min_accuracy:.4f} and is within "
        f"{policy.max_regression:.4f} of {label} ({current:.4f})"
    )
