"""Drift statistics: pure numpy/scipy, no I/O.

Every function here takes a reference that was prepared once (sorted samples, bins, category counts)
and the current window, so a check costs O(window * log reference) per column instead of re-sorting
the reference each time.

Where Evidently (0.7) computes a statistic, the function named after it returns Evidently's value for
the same data within floating-point noise: ``ks_test`` (scipy's two-sample KS), ``wasserstein_normed``,
``jensenshannon_distance`` and ``psi`` on ``evidently_shares`` bins, ``chisquare_goodness_of_fit`` and
``z_test``. Two are deliberately different, and documented as such in docs/drift_exporter.md:

- ``chisquare_homogeneity``: a test of homogeneity of the reference and window counts (Evidently's
  chi-square is goodness-of-fit against reference counts taken as exact, which over-flags);
- ``psi_quantile``: PSI on fixed reference quantile bins (Evidently's PSI bins the union of both
  samples with Sturges' rule, so its bins move with every window).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# scipy.stats.ks_2samp computes exact p-values up to this sample size (its MAX_AUTO_N).
KS_EXACT_MAX_N = 10000
# Evidently bins numeric columns by value (one bin per distinct value) up to this many distinct values.
EVIDENTLY_VALUE_BINS_MAX_UNIQUE = 20
# Reference categories beyond this many (by frequency) share one "other" bucket in the homogeneity test.
DEFAULT_MAX_CATEGORIES = 50
OTHER = "__other__"
UNSEEN = "__unseen__"

Correction = Literal["none", "bonferroni", "bh"]


# ---------------------------------------------------------------------------------------------------
# Prepared references


@dataclass(frozen=True)
class NumericReference:
    """One numeric reference column, prepared once per model version."""

    sorted_values: FloatArray  # finite values, ascending
    missing: int  # NaN and ±inf in the reference
    std: float  # population standard deviation (what Evidently norms Wasserstein by)
    unique_values: FloatArray  # ascending
    unique_counts: IntArray
    quantile_edges: FloatArray  # interior edges of the PSI bins (reference quantiles, strictly increasing)
    quantile_shares: FloatArray  # reference share per PSI bin (len(quantile_edges) + 1)
    center: float  # reference mean; sorted values minus it keep the prefix sums well conditioned
    centered: FloatArray  # sorted_values - center
    prefix_sums: FloatArray  # 0 followed by the cumulative sums of ``centered``

    @property
    def rows(self) -> int:
        return int(self.sorted_values.size)

    @property
    def missing_share(self) -> float:
        total = self.rows + self.missing
        return self.missing / total if total else 0.0


@dataclass(frozen=True)
class CategoricalReference:
    """One categorical reference column: counts by category, with an ``other`` bucket for the tail."""

    counts: dict[str, int]  # every reference category (non-missing) and its count
    kept: tuple[str, ...]  # categories with their own column in the homogeneity test, most frequent first
    missing: int

    @property
    def rows(self) -> int:
        return int(sum(self.counts.values()))

    @property
    def missing_share(self) -> float:
        total = self.rows + self.missing
        return self.missing / total if total else 0.0


def finite_values(values: npt.ArrayLike) -> tuple[FloatArray, int]:
    """The finite values of ``values`` as float64, and how many were missing (NaN, ±inf, None)."""
    array = np.asarray(values, dtype=np.float64)
    mask = np.isfinite(array)
    return array[mask], int(array.size - int(mask.sum()))


def prepare_numeric(values: npt.ArrayLike, *, psi_bins: int = 10) -> NumericReference:
    """Sort the finite reference values and precompute what every check needs."""
    finite, missing = finite_values(values)
    ordered = np.sort(finite)
    unique_values, unique_counts = np.unique(ordered, return_counts=True)
    std = float(np.std(ordered)) if ordered.size else 0.0
    edges = quantile_edges(ordered, psi_bins)
    shares = bin_counts(ordered, edges) / max(ordered.size, 1)
    center = float(np.mean(ordered)) if ordered.size else 0.0
    centered = ordered - center
    return NumericReference(
        sorted_values=ordered, missing=missing, std=std, unique_values=unique_values.astype(np.float64),
        unique_counts=unique_counts.astype(np.int64), quantile_edges=edges, quantile_shares=shares,
        center=center, centered=centered, prefix_sums=np.concatenate(([0.0], np.cumsum(centered))),
    )


def prepare_categorical(values: Iterable[str | None], *, max_categories: int = DEFAULT_MAX_CATEGORIES,
                        counted: Mapping[object, int] | None = None) -> CategoricalReference:
    """Count reference categories; ``None`` is missing. ``values`` must be normalised strings; or pass
    ``counted`` (raw value -> count, e.g. pandas ``value_counts(dropna=False)``), normalised here."""
    counts: Counter[str] = Counter()
    missing = 0
    pairs = ((normalize_category(k), int(v)) for k, v in counted.items()) if counted is not None else (
        (value, 1) for value in values)
    for value, count in pairs:
        if value is None:
            missing += count
        else:
            counts[value] += count
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = tuple(name for name, _ in ranked[:max_categories])
    return CategoricalReference(counts=dict(counts), kept=kept, missing=missing)


def normalize_category(value: object) -> str | None:
    """One spelling per category across CSV and JSON: ``1``, ``1.0`` and ``"1"`` are all ``"1"``;
    ``None``, NaN and empty strings are missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        if not math.isfinite(float(value)):
            return None
        if float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    text = str(value)
    return text if text != "" else None


# ---------------------------------------------------------------------------------------------------
# Numeric statistics


def ks_statistic(reference_sorted: FloatArray, current_sorted: FloatArray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic (largest gap between the empirical CDFs), found
    with binary searches in the sorted reference: O(m log n) instead of sorting both samples."""
    n, m = int(reference_sorted.size), int(current_sorted.size)
    if n == 0 or m == 0:
        raise ValueError("the KS test needs at least one value in the reference and in the window")
    cur = current_sorted
    ref_right = np.searchsorted(reference_sorted, cur, side="right")
    ref_left = np.searchsorted(reference_sorted, cur, side="left")
    cur_right = np.searchsorted(cur, cur, side="right")
    # At each window value: F_ref - F_cur. Just before the next window value: the largest reference
    # value below it, against the same F_cur. Those points hold the extremes scipy finds.
    at_current = ref_right / n - cur_right / m
    before_next = np.empty(m, dtype=np.float64)
    before_next[0] = ref_left[0] / n
    before_next[1:] = ref_left[1:] / n - cur_right[:-1] / m
    max_s = max(float(at_current.max()), float(before_next.max()), 0.0)
    min_s = float(np.clip(-min(float(at_current.min()), 0.0), 0, 1))
    return min_s if min_s > max_s else max_s


def ks_test(reference_sorted: FloatArray, current_sorted: FloatArray) -> tuple[float, float]:
    """Two-sample KS statistic and two-sided p-value, equal to ``scipy.stats.ks_2samp`` (method
    ``auto``): exact up to 10 000 values per sample, else the asymptotic distribution scipy uses."""
    n, m = int(reference_sorted.size), int(current_sorted.size)
    if n == 0 or m == 0:
        raise ValueError("the KS test needs at least one value in the reference and in the window")
    if max(n, m) <= KS_EXACT_MAX_N:
        result = stats.ks_2samp(reference_sorted, current_sorted)
        return float(result.statistic), float(result.pvalue)
    d = ks_statistic(reference_sorted, current_sorted)
    big, small = sorted([float(n), float(m)], reverse=True)
    en = big * small / (big + small)
    return d, float(np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1))


def anderson_darling_test(reference_sorted: FloatArray, current_sorted: FloatArray) -> tuple[float, float]:
    """The k-sample Anderson-Darling test of the two samples (midrank variant): normalised statistic
    and p-value, as ``scipy.stats.anderson_ksamp`` gives them and Evidently's ``anderson`` reads them.
    scipy interpolates the p-value in a table and clips it to [0.001, 0.25]; its warning about the
    clipping is silenced, the clipped value is what Evidently reports too. Weighs the tails more than
    KS and has more power against a shift of part of the window, which matters on small references."""
    if reference_sorted.size == 0 or current_sorted.size == 0:
        raise ValueError("the Anderson-Darling test needs at least one value in the reference and in the window")
    if reference_sorted[0] == reference_sorted[-1] == current_sorted[0] == current_sorted[-1]:
        # One value everywhere (a constant feature that stayed constant): scipy refuses ("needs more
        # than one distinct observation"). Documented choice: no evidence of drift, statistic 0, p 1.
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = stats.anderson_ksamp([reference_sorted, current_sorted], variant="midrank")
    return float(result.statistic), float(result.pvalue)


def wasserstein_normed(reference: NumericReference, current_sorted: FloatArray) -> float:
    """First Wasserstein distance between the samples divided by the reference standard deviation
    (at least 0.001), as Evidently's ``wasserstein`` method computes it with scipy.

    W1 is the area between the two empirical CDFs. On each stretch between consecutive window
    values the window CDF is a constant ``a``; the reference CDF crosses ``a`` at one known order
    statistic, and its integral comes from prefix sums of the sorted reference. That makes it
    O(m log n) per check instead of merging both samples.
    """
    n, m = reference.rows, int(current_sorted.size)
    if n == 0 or m == 0:
        raise ValueError("the Wasserstein distance needs values in the reference and in the window")
    ref = reference.centered
    prefix = reference.prefix_sums
    cur = current_sorted - reference.center

    def area_under_reference_cdf(x: FloatArray) -> FloatArray:
        k = np.searchsorted(ref, x, side="right")
        return (k * x - prefix[k]) / n

    points = np.concatenate(([min(float(ref[0]), float(cur[0]))], cur, [max(float(ref[-1]), float(cur[-1]))]))
    low, high = points[:-1], points[1:]
    steps = np.arange(m + 1, dtype=np.int64)
    level = steps / m  # window CDF on [low, high)
    crossing = -((-steps * n) // m)  # ceil(level * n): reference CDF >= level from this order statistic on
    cut = np.where(crossing > 0, ref[np.maximum(crossing, 1) - 1], -np.inf)
    cut = np.clip(cut, low, high)
    h_points = area_under_reference_cdf(points)
    h_low, h_high = h_points[:-1], h_points[1:]
    h_cut = area_under_reference_cdf(cut)
    area = level * (cut - low) - (h_cut - h_low) + (h_high - h_cut) - level * (high - cut)
    return float(area.sum()) / max(reference.std, 0.001)


def quantile_edges(reference_sorted: FloatArray, bins: int) -> FloatArray:
    """Interior edges of ``bins`` equal-frequency bins of the reference (duplicates merged, so a
    discrete column gets fewer bins)."""
    if reference_sorted.size == 0 or bins < 2:
        return np.empty(0, dtype=np.float64)
    probabilities = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges: FloatArray = np.unique(np.quantile(reference_sorted, probabilities, method="inverted_cdf"))
    # A bin is (edge[i-1], edge[i]]; an edge at the maximum would leave an empty last bin.
    kept: FloatArray = edges[edges < reference_sorted[-1]].astype(np.float64)
    return kept


def bin_counts(values: FloatArray, edges: FloatArray) -> FloatArray:
    """Counts of ``values`` in the bins (-inf, e0], (e0, e1], ..., (e_last, +inf)."""
    index = np.searchsorted(edges, values, side="left")
    return np.bincount(index, minlength=edges.size + 1).astype(np.float64)


def fill_zero_shares(shares: FloatArray) -> FloatArray:
    """Evidently's smoothing of empty bins: the smallest non-zero share / 1e6 when that is at most
    1e-4, else 1e-4. Keeps PSI finite when a bin is empty on one side."""
    filled = shares.astype(np.float64, copy=True)
    nonzero = filled[filled != 0]
    if nonzero.size == 0:
        return filled
    smallest = float(nonzero.min())
    filled[filled == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return filled


def psi(reference_shares: FloatArray, current_shares: FloatArray) -> float:
    """Population stability index of two share vectors (zeros smoothed as Evidently does)."""
    ref = fill_zero_shares(reference_shares)
    cur = fill_zero_shares(current_shares)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def psi_quantile(reference: NumericReference, current: FloatArray) -> float:
    """PSI on the reference's own quantile bins (fixed per version, so values are comparable across
    windows; the usual reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift)."""
    if current.size == 0:
        raise ValueError("PSI needs values in the window")
    shares = bin_counts(current, reference.quantile_edges) / current.size
    return psi(reference.quantile_shares, shares)


def jensenshannon_distance(reference_shares: FloatArray, current_shares: FloatArray) -> float:
    """Jensen-Shannon distance (natural log, as ``scipy.spatial.distance.jensenshannon``)."""
    return float(distance.jensenshannon(reference_shares, current_shares))


def sturges_edges(low: float, high: float, size: int) -> FloatArray:
    """The edges ``numpy.histogram_bin_edges(data, bins="sturges")`` returns for data with this
    minimum, maximum and size, without building the data."""
    first, last = low, high
    span = last - first
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = span / (np.log2(size) + 1.0)
    count = int(np.ceil((last - first) / width)) if width else 1
    return np.linspace(first, last, count + 1, endpoint=True, dtype=np.float64)


def histogram_sorted(sorted_values: FloatArray, edges: FloatArray) -> FloatArray:
    """``numpy.histogram(values, edges)[0]`` for sorted values (bins closed on the left, the last one
    on both sides), in O(bins * log n)."""
    cumulative = np.concatenate((np.searchsorted(sorted_values, edges[:-1], side="left"),
                                 np.searchsorted(sorted_values, edges[-1:], side="right")))
    return np.diff(cumulative).astype(np.float64)


def evidently_shares(reference: NumericReference, current: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Reference and window shares binned as Evidently bins numeric columns for PSI and
    Jensen-Shannon: Sturges bins over both samples when the reference has more than 20 distinct
    values, else one bin per distinct value seen in either sample."""
    if reference.rows == 0 or current.size == 0:
        raise ValueError("binning needs values in the reference and in the window")
    cur = np.sort(current)
    if reference.unique_values.size > EVIDENTLY_VALUE_BINS_MAX_UNIQUE:
        low = min(float(reference.sorted_values[0]), float(cur[0]))
        high = max(float(reference.sorted_values[-1]), float(cur[-1]))
        edges = sturges_edges(low, high, reference.rows + int(cur.size))
        return (histogram_sorted(reference.sorted_values, edges) / reference.rows,
                histogram_sorted(cur, edges) / cur.size)
    cur_values, cur_counts = np.unique(cur, return_counts=True)
    keys = np.union1d(reference.unique_values, cur_values)
    ref_full = np.zeros(keys.size)
    cur_full = np.zeros(keys.size)
    ref_full[np.searchsorted(keys, reference.unique_values)] = reference.unique_counts
    cur_full[np.searchsorted(keys, cur_values)] = cur_counts
    return ref_full / reference.rows, cur_full / cur.size


def distinct_count(reference: NumericReference, current: FloatArray, *, stop_above: int = 5) -> int:
    """Distinct finite values in reference and window together (exact up to ``stop_above`` + 1,
    which is all Evidently's method choice needs)."""
    if reference.unique_values.size > stop_above:
        return int(reference.unique_values.size)
    return int(np.union1d(reference.unique_values, np.unique(current)).size)


def numeric_value_counts(reference: NumericReference, current: FloatArray) -> CategoryCounts:
    """A few-valued numeric column as a category table (for chi-square and z tests)."""
    cur_values, cur_counts = np.unique(current, return_counts=True)
    keys = np.union1d(reference.unique_values, cur_values)
    ref_full = np.zeros(keys.size, dtype=np.int64)
    cur_full = np.zeros(keys.size, dtype=np.int64)
    ref_full[np.searchsorted(keys, reference.unique_values)] = reference.unique_counts
    cur_full[np.searchsorted(keys, cur_values)] = cur_counts
    return CategoryCounts(keys=tuple(repr(float(k)) for k in keys), reference=ref_full, current=cur_full,
                          unseen=int(cur_full[ref_full == 0].sum()))


# ---------------------------------------------------------------------------------------------------
# Categorical statistics


@dataclass(frozen=True)
class CategoryCounts:
    """Reference and window counts over every category seen in either (missing values excluded)."""

    keys: tuple[str, ...]
    reference: IntArray
    current: IntArray
    unseen: int  # window values of categories the reference never had

    @property
    def current_rows(self) -> int:
        return int(self.current.sum())

    def shares(self) -> tuple[FloatArray, FloatArray]:
        return (self.reference / max(int(self.reference.sum()), 1),
                self.current / max(int(self.current.sum()), 1))


def count_categories(reference: CategoricalReference, current: Sequence[str | None]) -> tuple[CategoryCounts, int]:
    """Count the window's categories against the reference; returns the table and the number of
    missing window values."""
    counter: Counter[str | None] = Counter(current)
    missing = counter.pop(None, 0)
    window: dict[str, int] = {k: v for k, v in counter.items() if k is not None}
    keys = tuple(sorted(set(reference.counts) | set(window)))
    ref = np.array([reference.counts.get(k, 0) for k in keys], dtype=np.int64)
    cur = np.array([window.get(k, 0) for k in keys], dtype=np.int64)
    unseen = int(sum(v for k, v in window.items() if k not in reference.counts))
    return CategoryCounts(keys=keys, reference=ref, current=cur, unseen=unseen), int(missing)


def homogeneity_table(counts: CategoryCounts, kept: Sequence[str] | None = None) -> IntArray:
    """2 x k table (reference, window) for the homogeneity test: reference categories outside
    ``kept`` share an ``other`` column, categories only the window has share an ``unseen`` column,
    and columns empty on both sides are dropped."""
    keep = set(kept) if kept is not None else None
    columns: dict[str, list[int]] = {}
    for key, r, c in zip(counts.keys, counts.reference.tolist(), counts.current.tolist(), strict=True):
        if r == 0:
            bucket = UNSEEN
        elif keep is not None and key not in keep:
            bucket = OTHER
        else:
            bucket = key
        column = columns.setdefault(bucket, [0, 0])
        column[0] += r
        column[1] += c
    table = np.array(list(columns.values()), dtype=np.int64).T.reshape(2, -1)
    return table[:, table.sum(axis=0) > 0]


def chisquare_homogeneity(table: IntArray) -> tuple[float, float]:
    """Pearson's chi-square test of homogeneity on a 2 x k table (no continuity correction, so for
    k = 2 it equals the two-proportion z-test). One column, or an empty row: no evidence (0, 1)."""
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def cramers_v(table: IntArray, statistic: float) -> float:
    """Effect size of a 2 x k table: sqrt(chi2 / N) (0 = same distribution, 1 = disjoint)."""
    total = int(table.sum())
    if total == 0 or table.shape[1] < 2:
        return 0.0
    return float(min(1.0, math.sqrt(statistic / total)))


def chisquare_goodness_of_fit(counts: CategoryCounts) -> tuple[float, float]:
    """Evidently's chi-square: window counts against reference counts scaled to the window size,
    taken as exact expectations (a category the reference lacks gives p = 0). A single category
    (in both, e.g. the predictions of a model that predicts one class) has no degrees of freedom:
    scipy's p is NaN; like Evidently's verdict, that is no drift (statistic 0, p 1)."""
    ref_rows = int(counts.reference.sum())
    cur_rows = int(counts.current.sum())
    if ref_rows == 0 or cur_rows == 0:
        raise ValueError("chi-square needs values in the reference and in the window")
    present = (counts.reference > 0) | (counts.current > 0)
    if int(present.sum()) < 2:
        return 0.0, 1.0
    expected = counts.reference[present] * (cur_rows / ref_rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = stats.chisquare(counts.current[present].astype(np.float64), expected)
    p = float(result.pvalue)
    return float(result.statistic), (0.0 if math.isnan(p) else p)


def z_test(counts: CategoryCounts) -> float:
    """Evidently's two-proportion z-test p-value for columns with at most two values: the share of
    the first (smallest) category in reference and window."""
    ref_rows = int(counts.reference.sum())
    cur_rows = int(counts.current.sum())
    if ref_rows == 0 or cur_rows == 0:
        raise ValueError("the z-test needs values in the reference and in the window")
    present_ref = counts.reference > 0
    present_cur = counts.current > 0
    if present_ref.sum() == 1 and present_cur.sum() == 1 and bool((present_ref == present_cur).all()):
        return 1.0
    first = int(np.flatnonzero(present_ref | present_cur)[0])
    # Evidently codes the first category 0 and every other 1, and compares the shares of 1.
    p1 = float(ref_rows - int(counts.reference[first])) / ref_rows
    p2 = float(cur_rows - int(counts.current[first])) / cur_rows
    pooled = (p1 * ref_rows + p2 * cur_rows) / (ref_rows + cur_rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / ref_rows + 1.0 / cur_rows))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


# ---------------------------------------------------------------------------------------------------
# Multiple testing


def adjust_p_values(p_values: Sequence[float], correction: Correction) -> list[float]:
    """Adjusted p-values: Bonferroni (family-wise error) or Benjamini-Hochberg (false discovery
    rate); compare them with the same threshold as raw p-values."""
    p = np.asarray(p_values, dtype=np.float64)
    k = p.size
    if k == 0 or correction == "none":
        return [float(v) for v in p]
    if correction == "bonferroni":
        return [float(v) for v in np.minimum(p * k, 1.0)]
    if correction == "bh":
        order = np.argsort(p)
        ranked = p[order] * k / np.arange(1, k + 1)
        monotone = np.minimum.accumulate(ranked[::-1])[::-1]
        adjusted = np.empty(k)
        adjusted[order] = np.minimum(monotone, 1.0)
        return [float(v) for v in adjusted]
    raise ValueError(f"unknown multiple-testing correction {correction!r}; use none, bonferroni or bh")
