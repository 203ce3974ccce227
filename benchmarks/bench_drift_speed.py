"""Our drift check against Evidently's Report([DataDriftPreset()]) on the same data, in the same run.

Inputs (fixed seeds): reference 50 000 rows, window 5 000 rows.
  numeric table: 40 numeric columns (normal, gamma, uniform, rounded; 10 of them shifted in the window).
  mixed table:   30 numeric + 10 categorical columns (4 to 40 categories, one unseen category in the window).
Ours: ``compute_drift`` on a reference prepared once per version (the window already read, as the
issue asks); the one-time preparation is timed on its own. Evidently: one Report run (it takes
seconds; --evidently-runs to repeat). Per column, our deciding method and value are compared with
Evidently's (normed Wasserstein / Jensen-Shannon here, as the reference has more than 1000 rows).

Target: at least 50x faster than Evidently, equal per-column values (within 1e-6).

Run: .venv/bin/python benchmarks/bench_drift_speed.py [--evidently-runs 1] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drift_exporter.check import compute_drift
from drift_exporter.decisions import DriftPolicy
from drift_exporter.reference import prepare_reference
from drift_exporter.window import Window
from model_registry.reference import REFERENCE_FORMAT, ReferenceData

EVIDENTLY_METHODS = {"Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
                     "K-S p_value": "ks", "chi-square p_value": "chisquare_gof", "Z-test p_value": "z", "PSI": "psi"}


def numeric_column(rng: np.random.Generator, i: int, rows: int, shifted: bool) -> np.ndarray:
    kind = i % 4
    shift = 0.3 if shifted else 0.0
    if kind == 0:
        return rng.normal(shift, 1.0, rows)
    if kind == 1:
        return rng.gamma(2.0, 2.0 * (1 + shift), rows)
    if kind == 2:
        return rng.uniform(0.0, 10.0 + 10 * shift, rows)
    return np.round(rng.normal(50 + 10 * shift, 10, rows))


def tables(mixed: bool, ref_rows: int, cur_rows: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(42)
    numeric = 30 if mixed else 40
    ref: dict[str, object] = {}
    cur: dict[str, object] = {}
    types: dict[str, str] = {}
    for i in range(numeric):
        name = f"num_{i:02d}"
        ref[name] = numeric_column(rng, i, ref_rows, False)
        cur[name] = numeric_column(rng, i, cur_rows, shifted=i % 4 == 0)
        types[name] = "numeric"
    for j in range(40 - numeric):
        name = f"cat_{j:02d}"
        k = 4 + 4 * j
        categories = np.array([f"c{c}" for c in range(k)])
        weights = rng.dirichlet(np.ones(k))
        ref[name] = rng.choice(categories, ref_rows, p=weights)
        drifted = rng.dirichlet(np.ones(k)) if j % 3 == 0 else weights
        values = rng.choice(categories, cur_rows, p=drifted).astype(object)
        values[:: 50 + j] = "unseen"
        cur[name] = values
        types[name] = "categorical"
    return pd.DataFrame(ref), pd.DataFrame(cur), types


def as_window(frame: pd.DataFrame, types: dict[str, str]) -> Window:
    return Window(rows=len(frame),
                  numeric={c: frame[c].to_numpy(dtype=np.float64) for c in frame if types[c] == "numeric"},
                  categorical={c: frame[c].astype(str).tolist() for c in frame if types[c] == "categorical"},
                  prediction_classes=["a"] * len(frame), prediction_versions=["1"] * len(frame))


def run_evidently(ref: pd.DataFrame, cur: pd.DataFrame, types: dict[str, str]) -> tuple[float, dict[str, tuple[str, float]]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=[c for c, t in types.items() if t == "numeric"],
                                categorical_columns=[c for c, t in types.items() if t == "categorical"])
    current = Dataset.from_pandas(cur, data_definition=definition)
    reference = Dataset.from_pandas(ref, data_definition=definition)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current, reference)
        elapsed = time.perf_counter() - started
    values = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            values[config["column"]] = (EVIDENTLY_METHODS.get(config["method"], config["method"]), float(metric["value"]))
    return elapsed, values


def bench(label: str, mixed: bool, ref_rows: int, cur_rows: int, runs: int, evidently_runs: int) -> None:
    ref, cur, types = tables(mixed, ref_rows, cur_rows)
    predictions = pd.DataFrame({"class_id": 0, "class_name": "a", "probability": 1.0}, index=range(ref_rows))
    metadata = {"format": REFERENCE_FORMAT, "model_name": "bench", "feature_names": list(ref.columns),
                "feature_types": types, "class_names": ["a"], "rows": ref_rows, "created_at": "2026-01-01"}
    data = ReferenceData(features=ref, predictions=predictions, metadata=metadata)

    started = time.perf_counter()
    prepared = prepare_reference(data, model_name="bench", version="1")
    prepare_seconds = time.perf_counter() - started
    window = as_window(cur, types)
    policy = DriftPolicy(correction="none", min_window_rows=100)
    ours: list[float] = []
    result = compute_drift(prepared, window, policy)  # warm-up (imports, caches)
    for _ in range(runs):
        started = time.perf_counter()
        result = compute_drift(prepared, window, policy)
        ours.append(time.perf_counter() - started)

    evidently: list[float] = []
    oracle: dict[str, tuple[str, float]] = {}
    for _ in range(evidently_runs):
        elapsed, oracle = run_evidently(ref, cur, types)
        evidently.append(elapsed)

    worst = 0.0
    mismatched = []
    for column in ref.columns:
        method, value = oracle[column]
        feature = result.feature(column)
        if feature.method != method or feature.value is None:
            mismatched.append(f"{column}: ours {feature.method}, Evidently {method}")
            continue
        worst = max(worst, abs(feature.value - value))
    check = statistics.median(ours)
    ev = statistics.median(evidently)
    detected = sum(bool(f.detected) for f in result.features)
    print(f"[{label}] reference {ref_rows} x window {cur_rows} x {len(ref.columns)} columns "
          f"({sum(t == 'numeric' for t in types.values())} numeric, {sum(t == 'categorical' for t in types.values())} "
          f"categorical); methods: {sorted({f.method for f in result.features if f.method})}")
    print(f"[{label}] evidently Report([DataDriftPreset()]): {ev:.3f} s (median of {len(evidently)})")
    print(f"[{label}] ours, check with the window read: {check * 1000:.1f} ms (median of {runs}); "
          f"speed-up {ev / check:.0f}x")
    print(f"[{label}] ours, check + one-time reference preparation: {(check + prepare_seconds) * 1000:.1f} ms; "
          f"speed-up {ev / (check + prepare_seconds):.0f}x")
    print(f"[{label}] per-column values vs Evidently: max |difference| {worst:.2e} over {len(ref.columns)} columns; "
          f"method mismatches: {mismatched or 'none'}; drifted columns (ours): {detected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="repetitions of our check (median reported)")
    parser.add_argument("--evidently-runs", type=int, default=1, help="repetitions of Evidently (slow)")
    parser.add_argument("--reference-rows", type=int, default=50_000)
    parser.add_argument("--window-rows", type=int, default=5_000)
    args = parser.parse_args()
    bench("numeric", False, args.reference_rows, args.window_rows, args.runs, args.evidently_runs)
    bench("mixed", True, args.reference_rows, args.window_rows, args.runs, args.evidently_runs)


if __name__ == "__main__":
    main()
