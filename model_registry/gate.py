"""The quality gate: may a candidate version replace production? Pure functions, no I/O.

The metric follows the task: classifiers are judged on ``test_accuracy`` by default, regressors on
``test_rmse`` (lower is better); any metric of ``GATE_METRICS`` can be chosen instead. A candidate
must reach the policy's bound (``min_accuracy`` for scores in [0, 1]; ``max_error`` for errors, when
set) and must not be worse than production by more than ``max_regression``: an absolute margin for
scores, a relative one for errors (0.02 = 2% higher RMSE). When production's metric cannot be read
(registry error, version without the metric) the gate refuses: "cannot compare" never means "better".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from model_registry.tasks import TaskKind

GATE_METRIC = "test_accuracy"  # the classification default, kept for existing callers
# name -> True when higher is better
GATE_METRICS: dict[str, bool] = {
    "test_accuracy": True, "f1_macro": True, "precision_macro": True, "recall_macro": True,
    "roc_auc_ovr": True, "test_r2": True, "test_rmse": False, "test_mae": False,
}
DEFAULT_GATE_METRIC: dict[TaskKind, str] = {"classification": "test_accuracy", "regression": "test_rmse"}
_UNIT_SCORES = frozenset({"test_accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc_ovr"})


@dataclass(frozen=True)
class GatePolicy:
    min_accuracy: float = 0.85
    max_regression: float = 0.02
    metric: str | None = None  # None: the task's default
    task: TaskKind = "classification"
    max_error: float | None = None  # bound for lower-is-better metrics (RMSE, MAE); None: no bound

    @property
    def metric_name(self) -> str:
        return self.metric or DEFAULT_GATE_METRIC[self.task]


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def check_metric(name: str) -> str:
    if name not in GATE_METRICS:
        raise ValueError(f"gate metric {name!r} is not one of {', '.join(sorted(GATE_METRICS))}")
    return name


def evaluate_gate(candidate: Mapping[str, float], production: Mapping[str, float] | None,
                  policy: GatePolicy, *, production_version: str | None = None,
                  production_error: str | None = None) -> GateDecision:
    """Promote only a candidate that reaches the bound and is not worse than production by more than
    the margin. ``production`` None means there is no production version; ``production_error`` says
    its metrics could not be read, which blocks."""
    metric = check_metric(policy.metric_name)
    higher = GATE_METRICS[metric]
    score = candidate.get(metric)
    if score is None or math.isnan(score):
        return GateDecision(False, f"candidate has no {metric} metric; cannot judge it")
    if higher and metric in _UNIT_SCORES and score < policy.min_accuracy:
        return GateDecision(False, f"{metric} {score:.4f} is below the minimum {policy.min_accuracy:.4f}")
    if not higher and policy.max_error is not None and score > policy.max_error:
        return GateDecision(False, f"{metric} {score:.4g} is above the maximum {policy.max_error:.4g}")
    bound = (f"reaches the minimum {policy.min_accuracy:.4f}" if higher and metric in _UNIT_SCORES
             else f"is within the maximum {policy.max_error:.4g}" if policy.max_error is not None
             else "has no bound")
    label = f"production v{production_version}" if production_version else "production"
    if production_error is not None:
        return GateDecision(False, f"cannot read the metrics of {label} ({production_error}); refusing to "
                                   "promote without a comparison (promote by hand with `driftwatch promote`)")
    if production is None:
        return GateDecision(True, f"{metric} {_fmt(score)} {bound}; no production version to compare with")
    current = production.get(metric)
    if current is None or math.isnan(current):
        return GateDecision(False, f"{label} has no {metric} metric, so the candidate cannot be compared with "
                                   "it; score both on the same holdout (`driftwatch register --holdout`) or "
                                   "promote by hand with `driftwatch promote`")
    # A tiny tolerance keeps 0.95 - 0.02 == 0.93 from failing on float rounding.
    if higher:
        worse = score < current - policy.max_regression - 1e-12
        margin = f"{policy.max_regression:.4f}"
    else:
        worse = score > current * (1 + policy.max_regression) + 1e-12
        margin = f"{policy.max_regression:.0%}"
    if worse:
        return GateDecision(False, f"{metric} {_fmt(score)} is worse than {label} ({_fmt(current)}) by more than "
                                   f"the margin {margin}")
    return GateDecision(True, f"{metric} {_fmt(score)} {bound} and is within {margin} of {label} ({_fmt(current)})")


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"
