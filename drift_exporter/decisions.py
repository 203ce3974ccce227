"""Which test each column gets, what counts as drift, and how many p-values one verdict may spend.

Pure functions of their inputs. The default method follows Evidently's rules so that on-call people
who know Evidently read the same numbers; where a dataset-level verdict is built from several
p-values, the per-feature decisions are corrected for multiple testing first (Evidently does not,
and with 40 features at p < 0.05 most unchanged windows would flag something).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from drift_exporter.stats import Correction, adjust_p_values

Method = Literal["ks", "anderson", "wasserstein", "psi", "jensenshannon", "chisquare", "chisquare_gof", "z"]
Kind = Literal["numeric", "categorical"]
ChiSquare = Literal["homogeneity", "goodness_of_fit"]

METHODS: tuple[Method, ...] = ("ks", "anderson", "wasserstein", "psi", "jensenshannon", "chisquare", "chisquare_gof",
                               "z")
P_VALUE_METHODS: frozenset[str] = frozenset({"ks", "anderson", "chisquare", "chisquare_gof", "z"})
NUMERIC_ONLY: frozenset[str] = frozenset({"ks", "anderson", "wasserstein"})
# Evidently's boundary between a "small" reference (statistical tests) and a large one (distances).
SMALL_REFERENCE_ROWS = 1000
ANDERSON_THRESHOLD = 0.1  # Evidently's default for "anderson"


@dataclass(frozen=True)
class DriftPolicy:
    """Thresholds and method choices for one exporter (built from its settings)."""

    p_value_threshold: float = 0.05
    # Evidently's default threshold for its "anderson" test is 0.1, not the 0.05 of its other tests.
    anderson_threshold: float = ANDERSON_THRESHOLD
    distance_threshold: float = 0.1
    drift_share: float = 0.5
    correction: Correction = "bonferroni"
    min_window_rows: int = 2000
    numeric_method: Method | None = None  # None: Evidently's rule
    categorical_method: Method | None = None  # None: Evidently's rule
    # Where the rule picks chi-square: a test of homogeneity (default), or Evidently's goodness of fit.
    chisquare: ChiSquare = "homogeneity"

    def __post_init__(self) -> None:
        if not 0 < self.p_value_threshold < 1:
            raise ValueError("the p-value threshold must be between 0 and 1 (e.g. 0.05)")
        if not 0 < self.anderson_threshold < 1:
            raise ValueError("the Anderson-Darling threshold must be between 0 and 1 (e.g. 0.1)")
        if self.distance_threshold <= 0:
            raise ValueError("the distance threshold must be positive (e.g. 0.1)")
        if not 0 < self.drift_share <= 1:
            raise ValueError("the drift share must be in (0, 1] (e.g. 0.5)")
        if self.min_window_rows < 1:
            raise ValueError("the minimum window must be at least 1 row")
        if self.categorical_method in NUMERIC_ONLY:
            raise ValueError(f"{self.categorical_method} works on numbers only; categorical columns can use "
                             "chisquare, chisquare_gof, z, psi or jensenshannon")

    def threshold(self, method: Method) -> float:
        if method == "anderson":
            return self.anderson_threshold
        return self.p_value_threshold if method in P_VALUE_METHODS else self.distance_threshold


def default_method(kind: Kind, reference_rows: int, distinct_values: int) -> Method:
    """Evidently's default test: on a reference of at most 1000 rows, KS for numeric columns with
    more than 5 distinct values, else chi-square (z-test for 2 or fewer values); on a larger
    reference, normed Wasserstein for numeric columns with more than 5 distinct values, else
    Jensen-Shannon. ``distinct_values`` counts reference and window together, so the choice can
    change between windows, as it does in Evidently."""
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if kind == "numeric" and distinct_values > 5:
            return "ks"
        return "chisquare" if distinct_values > 2 else "z"
    if kind == "numeric" and distinct_values > 5:
        return "wasserstein"
    return "jensenshannon"


def choose_method(kind: Kind, reference_rows: int, distinct_values: int, policy: DriftPolicy) -> Method:
    override = policy.numeric_method if kind == "numeric" else policy.categorical_method
    method = override or default_method(kind, reference_rows, distinct_values)
    if method == "chisquare" and policy.chisquare == "goodness_of_fit":
        return "chisquare_gof"
    return method


def is_drift(method: Method, value: float, threshold: float) -> bool:
    """Evidently's comparison per method: KS p <= threshold; Anderson-Darling, chi-square and z
    p < threshold; distances >= threshold."""
    if method == "ks":
        return value <= threshold
    if method in P_VALUE_METHODS:
        return value < threshold
    return value >= threshold


def corrected_decisions(methods: Sequence[Method], values: Sequence[float], policy: DriftPolicy
                        ) -> tuple[list[bool], list[float | None]]:
    """Per-feature drift decisions, with p-value tests corrected across the family of features that
    use one (Bonferroni or Benjamini-Hochberg); distances are compared with their threshold as is.
    Returns the decisions and the adjusted p-values (None for distances)."""
    tested = [i for i, m in enumerate(methods) if m in P_VALUE_METHODS]
    adjusted = adjust_p_values([values[i] for i in tested], policy.correction)
    adjusted_by_index: dict[int, float] = dict(zip(tested, adjusted, strict=True))
    decisions: list[bool] = []
    adjusted_values: list[float | None] = []
    for i, method in enumerate(methods):
        value = adjusted_by_index.get(i, values[i])
        decisions.append(is_drift(method, value, policy.threshold(method)))
        adjusted_values.append(adjusted_by_index.get(i))
    return decisions, adjusted_values


def dataset_drift(detected: Sequence[bool], policy: DriftPolicy) -> tuple[float, bool]:
    """Share of drifted features and the dataset verdict (share >= ``drift_share``, as Evidently)."""
    if not detected:
        return 0.0, False
    share = sum(detected) / len(detected)
    return share, share >= policy.drift_share


def window_is_sufficient(rows: int, policy: DriftPolicy) -> bool:
    """Below the minimum window no verdict is published: small windows of unchanged data cross
    distance thresholds by chance (normed Wasserstein >= 0.1 is common under ~300 rows)."""
    return rows >= policy.min_window_rows
