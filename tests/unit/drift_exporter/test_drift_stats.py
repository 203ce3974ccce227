"""Drift statistics against scipy and against Evidently 0.7 (the oracle) on fixed seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from scipy.spatial import distance

from drift_exporter import stats
from drift_exporter.stats import (
    adjust_p_values,
    anderson_darling_test,
    chisquare_goodness_of_fit,
    chisquare_homogeneity,
    count_categories,
    evidently_shares,
    homogeneity_table,
    jensenshannon_distance,
    ks_statistic,
    ks_test,
    normalize_category,
    prepare_categorical,
    prepare_numeric,
    psi,
    psi_quantile,
    wasserstein_normed,
    z_test,
)
from tests.unit.drift_exporter.evidently_oracle import evidently_values

TOLERANCE = 1e-6


def sample_pair(seed: int, n: int, m: int, shift: float = 0.0, scale: float = 1.0, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    ref = rng.normal(10.0, 2.0, size=n)
    cur = rng.normal(10.0 + shift, 2.0 * scale, size=m)
    if decimals is not None:
        ref, cur = np.round(ref, decimals), np.round(cur, decimals)
    return ref, cur


# --------------------------------------------------------------------------- against scipy


@pytest.mark.parametrize(
    ("n", "m", "shift", "decimals"),
    [
        pytest.param(120, 1000, 0.0, 1, id="small-reference-with-ties"),
        pytest.param(900, 400, 0.3, None, id="small-shifted"),
        pytest.param(20000, 12000, 0.05, None, id="large-asymptotic"),
        pytest.param(15000, 11000, 0.0, 0, id="large-integers-many-ties"),
        pytest.param(3, 2, 1.0, None, id="tiny"),
    ],
)
def test_ks_matches_scipy_ks_2samp(n: int, m: int, shift: float, decimals: int | None) -> None:
    ref, cur = sample_pair(1, n, m, shift, decimals=decimals)
    prepared = prepare_numeric(ref)
    expected = scipy_stats.ks_2samp(ref, cur)
    statistic, p_value = ks_test(prepared.sorted_values, np.sort(cur))
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p_value == pytest.approx(expected.pvalue, abs=1e-12)
    raw = scipy_stats.ks_2samp(ref, cur, method="asymp").statistic
    assert ks_statistic(prepared.sorted_values, np.sort(cur)) == pytest.approx(raw, abs=1e-15)


def test_ks_statistic_is_exact_on_random_discrete_samples() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        ref = rng.integers(0, int(rng.integers(1, 30)), size=int(rng.integers(1, 200))).astype(float)
        cur = rng.integers(0, 35, size=int(rng.integers(1, 200))).astype(float)
        expected = scipy_stats.ks_2samp(ref, cur, method="asymp").statistic
        assert ks_statistic(np.sort(ref), np.sort(cur)) == expected


def test_wasserstein_matches_scipy_including_ties_and_a_large_offset() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        offset = float(rng.choice([0.0, 1e6]))
        ref = rng.integers(0, int(rng.integers(1, 40)), size=int(rng.integers(1, 300))) * 0.5 + offset
        cur = rng.integers(0, 45, size=int(rng.integers(1, 300))) * 0.5 + offset
        prepared = prepare_numeric(ref)
        expected = scipy_stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
        assert wasserstein_normed(prepared, np.sort(cur)) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_sturges_edges_and_sorted_histogram_match_numpy() -> None:
    rng = np.random.default_rng(5)
    for size in (2, 7, 31, 1000, 4097, 55000):
        data = rng.normal(size=size) * rng.uniform(0.1, 1000)
        edges = stats.sturges_edges(float(data.min()), float(data.max()), size)
        np.testing.assert_array_equal(edges, np.histogram_bin_edges(data, bins="sturges"))
        np.testing.assert_array_equal(stats.histogram_sorted(np.sort(data), edges), np.histogram(data, edges)[0])


def test_jensenshannon_is_scipys_distance() -> None:
    p = np.array([0.2, 0.5, 0.3, 0.0])
    q = np.array([0.1, 0.1, 0.4, 0.4])
    assert jensenshannon_distance(p, q) == pytest.approx(float(distance.jensenshannon(p, q)), abs=1e-15)
    assert jensenshannon_distance(p, p) == 0.0


def test_chisquare_homogeneity_matches_chi2_contingency_and_the_z_test_on_two_categories() -> None:
    ref = prepare_categorical(["a"] * 60 + ["b"] * 40)
    counts, missing = count_categories(ref, ["a"] * 30 + ["b"] * 50 + [None] * 5)
    assert missing == 5
    table = homogeneity_table(counts, ref.kept)
    statistic, p_value = chisquare_homogeneity(table)
    expected = scipy_stats.chi2_contingency([[60, 40], [30, 50]], correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)
    # Without continuity correction, the 2 x 2 homogeneity test is the two-proportion z-test.
    assert z_test(counts) == pytest.approx(p_value, rel=1e-9)


def test_homogeneity_table_puts_unseen_categories_and_the_reference_tail_in_their_own_columns() -> None:
    ref = prepare_categorical(["a"] * 50 + ["b"] * 30 + ["c"] * 2 + ["d"] * 1, max_categories=2)
    assert ref.kept == ("a", "b")
    counts, _ = count_categories(ref, ["a"] * 10 + ["b"] * 5 + ["c"] + ["x", "y", "y"])
    assert counts.unseen == 3
    table = homogeneity_table(counts, ref.kept)
    # columns: a, b, other (c + d), unseen (x + y); order of the last two does not matter
    assert sorted(map(tuple, table.T.tolist())) == sorted([(50, 10), (30, 5), (3, 1), (0, 3)])


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        pytest.param(["a"] * 10, ["a"] * 7, id="one-category-on-both-sides"),
        pytest.param(["a"] * 10, ["b"] * 7, id="disjoint-single-categories"),
        pytest.param(["a", "b"] * 5, [None] * 4 + ["a"], id="mostly-missing-window"),
    ],
)
def test_categorical_tests_never_crash_on_degenerate_tables(reference: list[str], current: list[str | None]) -> None:
    ref = prepare_categorical(reference)
    counts, _ = count_categories(ref, current)
    statistic, p_value = chisquare_homogeneity(homogeneity_table(counts, ref.kept))
    assert 0.0 <= p_value <= 1.0 and statistic >= 0.0
    assert 0.0 <= z_test(counts) <= 1.0
    assert 0.0 <= chisquare_goodness_of_fit(counts)[1] <= 1.0
    r, c = counts.shares()
    assert np.isfinite(psi(r, c)) and np.isfinite(jensenshannon_distance(r, c))


def test_an_unseen_category_is_p_zero_for_evidentlys_chi_square_but_a_weighed_result_for_homogeneity() -> None:
    ref = prepare_categorical(["a"] * 50 + ["b"] * 50)
    counts, _ = count_categories(ref, ["a"] * 49 + ["b"] * 50 + ["new"])
    assert chisquare_goodness_of_fit(counts)[1] == 0.0
    assert chisquare_homogeneity(homogeneity_table(counts, ref.kept))[1] > 0.3


def test_psi_on_reference_quantile_bins_is_near_zero_for_the_same_data_and_grows_with_a_shift() -> None:
    ref, _ = sample_pair(2, 5000, 1)
    prepared = prepare_numeric(ref)
    assert prepared.quantile_edges.size == 9
    assert prepared.quantile_shares == pytest.approx(np.full(10, 0.1), abs=1e-3)
    assert psi_quantile(prepared, ref) == pytest.approx(0.0, abs=1e-6)
    _, shifted = sample_pair(2, 1, 5000, shift=2.0)  # one standard deviation
    assert psi_quantile(prepared, shifted) > 0.25
    # By hand: the window's share per reference decile bin.
    shares = np.array([np.mean((shifted > lo) & (shifted <= hi)) for lo, hi in
                       zip(np.r_[-np.inf, prepared.quantile_edges], np.r_[prepared.quantile_edges, np.inf], strict=True)])
    assert psi_quantile(prepared, shifted) == pytest.approx(psi(prepared.quantile_shares, shares))


def test_quantile_bins_of_a_discrete_reference_merge_duplicate_edges() -> None:
    prepared = prepare_numeric(np.array([1.0] * 50 + [2.0] * 30 + [3.0] * 20))
    assert prepared.quantile_edges.tolist() == [1.0, 2.0]
    assert prepared.quantile_shares.tolist() == [0.5, 0.3, 0.2]


def test_missing_and_infinite_reference_values_are_counted_not_used() -> None:
    prepared = prepare_numeric(np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 3.0]))
    assert prepared.sorted_values.tolist() == [1.0, 2.0, 3.0]
    assert prepared.missing == 3
    assert prepared.missing_share == 0.5


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, "1"), (1.0, "1"), ("1", "1"), (2.5, "2.5"), (None, None), (float("nan"), None), ("", None),
     (True, "true"), (np.int64(3), "3")],
)
def test_categories_have_one_spelling_across_csv_and_json(value: object, expected: str | None) -> None:
    assert normalize_category(value) == expected


def test_bonferroni_and_benjamini_hochberg_adjust_like_the_textbook() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust_p_values(p, "none") == p
    assert adjust_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    # BH: sorted 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.02, 0.04, 0.04
    assert adjust_p_values(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p_values([], "bh") == []
    with pytest.raises(ValueError, match="bonferroni or bh"):
        adjust_p_values(p, "holm")  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "m", "shift", "decimals"), [(120, 1000, 0.0, None), (120, 2000, 0.3, 1),
                                                       (300, 200, 1.0, None), (50, 50, 0.0, 0)])
def test_anderson_darling_is_scipys_midrank_k_sample_test(n: int, m: int, shift: float, decimals: int | None) -> None:
    ref, cur = sample_pair(7 + n + m, n, m, shift=shift, decimals=decimals)
    expected = scipy_stats.anderson_ksamp([ref, cur], variant="midrank")
    statistic, p = anderson_darling_test(np.sort(ref), np.sort(cur))
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, abs=1e-12)
    assert 0.001 <= p <= 0.25  # scipy's table: clipped at both ends
    with pytest.raises(ValueError, match="at least one value"):
        anderson_darling_test(np.sort(ref), np.array([]))


def test_anderson_darling_sees_a_shift_of_half_the_window_more_often_than_ks_on_a_small_reference() -> None:
    """120 reference rows, half of a 1000-row window moved by 0.5 sd (the case the alert-quality
    benchmark measures on Iris), at the Bonferroni level of 4 features: AD flags it in more draws
    than KS, and unshifted windows no more often."""
    rng = np.random.default_rng(3)
    level = 0.05 / 4
    flagged = {"ks": 0, "anderson": 0}
    false_alarms = {"ks": 0, "anderson": 0}
    for _ in range(200):
        ref = np.sort(rng.normal(0.0, 1.0, 120))
        cur = rng.normal(0.0, 1.0, 1000)
        unshifted = np.sort(cur)
        cur[500:] += 0.5
        cur = np.sort(cur)
        for name, test in (("ks", ks_test), ("anderson", anderson_darling_test)):
            flagged[name] += test(ref, cur)[1] < level
            false_alarms[name] += test(ref, unshifted)[1] < level
    assert flagged["anderson"] >= flagged["ks"] + 15, flagged
    assert false_alarms["anderson"] <= 6 and false_alarms["ks"] <= 6, false_alarms


# --------------------------------------------------------------------------- against Evidently


def test_numeric_values_equal_evidentlys_on_a_small_reference() -> None:
    """Reference of 300 rows: Evidently's default is KS; psi and jensenshannon bin with Sturges."""
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"x": rng.normal(5, 1, 300), "few": rng.choice([1.0, 2.0, 3.0, 4.0], 300),
                              "ten": rng.integers(0, 10, 300).astype(float)})
    current = pd.DataFrame({"x": rng.normal(5.3, 1.2, 200), "few": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], 200),
                            "ten": rng.integers(0, 12, 200).astype(float)})
    checks: list[tuple[str, str | None]] = [("x", None), ("x", "anderson"), ("x", "wasserstein"), ("x", "psi"),
                                            ("x", "jensenshannon"),
                                            ("few", None), ("few", "jensenshannon"), ("few", "psi"),
                                            ("ten", "jensenshannon"), ("ten", "psi")]
    oracle = evidently_values(reference, current, checks, numerical=["x", "few", "ten"])
    prepared = {c: prepare_numeric(reference[c].to_numpy()) for c in reference}
    cur = {c: np.sort(current[c].to_numpy()) for c in current}

    method, value = oracle[("x", None)]
    assert method == "K-S p_value"
    assert ks_test(prepared["x"].sorted_values, cur["x"])[1] == pytest.approx(value, abs=TOLERANCE)
    assert oracle[("x", "anderson")][0] == "anderson"
    assert anderson_darling_test(prepared["x"].sorted_values, cur["x"])[1] == pytest.approx(
        oracle[("x", "anderson")][1], abs=TOLERANCE)
    assert wasserstein_normed(prepared["x"], cur["x"]) == pytest.approx(oracle[("x", "wasserstein")][1], abs=TOLERANCE)
    for column in ("x", "few", "ten"):
        r, c = evidently_shares(prepared[column], cur[column])
        assert psi(r, c) == pytest.approx(oracle[(column, "psi")][1], abs=TOLERANCE)
        assert jensenshannon_distance(r, c) == pytest.approx(oracle[(column, "jensenshannon")][1], abs=TOLERANCE)
    # 5 distinct values over both samples: Evidently's default is its chi-square.
    method, value = oracle[("few", None)]
    assert method == "chi-square p_value"
    counts = stats.numeric_value_counts(prepared["few"], cur["few"])
    assert chisquare_goodness_of_fit(counts)[1] == pytest.approx(value, abs=TOLERANCE)


def test_numeric_values_equal_evidentlys_on_a_large_reference_with_missing_values() -> None:
    """Reference of 3000 rows: Evidently's default is normed Wasserstein; NaN and inf are dropped."""
    rng = np.random.default_rng(12)
    ref = rng.gamma(2.0, 3.0, 3000)
    cur = rng.gamma(2.2, 3.0, 1500)
    ref[::50] = np.nan
    cur[::40] = np.inf
    reference, current = pd.DataFrame({"g": ref}), pd.DataFrame({"g": cur})
    oracle = evidently_values(reference, current, [("g", None), ("g", "ks"), ("g", "psi"), ("g", "jensenshannon")],
                              numerical=["g"])
    prepared = prepare_numeric(ref)
    current_sorted = np.sort(cur[np.isfinite(cur)])
    method, value = oracle[("g", None)]
    assert method == "Wasserstein distance (normed)"
    assert wasserstein_normed(prepared, current_sorted) == pytest.approx(value, abs=TOLERANCE)
    assert ks_test(prepared.sorted_values, current_sorted)[1] == pytest.approx(oracle[("g", "ks")][1], abs=TOLERANCE)
    r, c = evidently_shares(prepared, current_sorted)
    assert psi(r, c) == pytest.approx(oracle[("g", "psi")][1], abs=TOLERANCE)
    assert jensenshannon_distance(r, c) == pytest.approx(oracle[("g", "jensenshannon")][1], abs=TOLERANCE)


def test_categorical_values_equal_evidentlys_including_unseen_categories() -> None:
    rng = np.random.default_rng(13)
    small_ref = pd.DataFrame({"c": rng.choice(["red", "green", "blue"], 400, p=[0.5, 0.3, 0.2]),
                              "b": rng.choice(["yes", "no"], 400)})
    small_cur = pd.DataFrame({"c": rng.choice(["red", "green", "blue", "violet"], 300, p=[0.4, 0.3, 0.2, 0.1]),
                              "b": rng.choice(["yes", "no"], 300, p=[0.6, 0.4])})
    oracle = evidently_values(small_ref, small_cur,
                              [("c", None), ("c", "psi"), ("c", "jensenshannon"), ("b", None)],
                              categorical=["c", "b"])
    ref_c = prepare_categorical(small_ref["c"].tolist())
    counts, _ = count_categories(ref_c, small_cur["c"].tolist())
    method, value = oracle[("c", None)]
    assert method == "chi-square p_value"
    assert value == 0.0  # the unseen category makes Evidently's goodness-of-fit p-value zero
    assert chisquare_goodness_of_fit(counts)[1] == pytest.approx(value, abs=TOLERANCE)
    r, c = counts.shares()
    assert psi(r, c) == pytest.approx(oracle[("c", "psi")][1], abs=TOLERANCE)
    assert jensenshannon_distance(r, c) == pytest.approx(oracle[("c", "jensenshannon")][1], abs=TOLERANCE)
    ref_b = prepare_categorical(small_ref["b"].tolist())
    counts_b, _ = count_categories(ref_b, small_cur["b"].tolist())
    method, value = oracle[("b", None)]
    assert method == "Z-test p_value"
    assert z_test(counts_b) == pytest.approx(value, abs=TOLERANCE)

    large_ref = pd.DataFrame({"c": rng.choice(["red", "green", "blue"], 2000, p=[0.5, 0.3, 0.2])})
    large_cur = pd.DataFrame({"c": rng.choice(["red", "green", "blue"], 500, p=[0.45, 0.35, 0.2])})
    oracle = evidently_values(large_ref, large_cur, [("c", None)], categorical=["c"])
    method, value = oracle[("c", None)]
    assert method == "Jensen-Shannon distance"
    counts_l, _ = count_categories(prepare_categorical(large_ref["c"].tolist()), large_cur["c"].tolist())
    assert jensenshannon_distance(*counts_l.shares()) == pytest.approx(value, abs=TOLERANCE)


def test_reference_categories_counted_by_pandas_are_normalised_and_missing_is_counted_apart() -> None:
    column = pd.Series([1, 1.0, "1", None, float("nan"), "b"], dtype="object")
    prepared = prepare_categorical((), counted=column.value_counts(dropna=False).to_dict())
    assert prepared.counts == {"1": 3, "b": 1}
    assert prepared.missing == 2 and prepared.missing_share == pytest.approx(2 / 6)
