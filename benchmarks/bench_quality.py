"""Quality monitoring: alert quality of ModelQualityDegraded, the CBPE estimate against NannyML's,
feedback ingestion and the join.

1. False alarms. A good version (true accuracy p) has a reference accuracy measured on a holdout of
   ``--holdout`` rows, as at registration; its live labels arrive and the quality service evaluates
   every ``--step`` labels over the newest 500 (its default window). Each evaluation applies the
   alert's condition exactly as the rule does (monitoring/alerts/driftwatch.rules.yml): the upper end
   of the 99% Wilson interval below reference - 0.05, on at least 200 labels (``for:`` is ignored:
   the per-evaluation rate is the conservative figure). Target: at most 1% of evaluations. The
   lower-bound variant (the first idea in the issue) is shown next to it.
2. Labels to catch a 10-point drop: the version's true accuracy falls by 0.10 at label 0; how many
   labels until the condition holds (median and 90th percentile over runs).
3. CBPE error against realized accuracy, on NannyML's own data with drift (US census employment in
   Massachusetts: real data, later years drift; and its synthetic multiclass set), chunk by chunk:
   our estimate (top-class probability calibrated on the reference by isotonic regression, what the
   service computes) next to NannyML's CBPE on the same chunks of the same files, in the same run.
   NannyML cannot share our virtualenv (0.13 pins botocore below what boto3 needs, through s3fs ->
   aiobotocore), so it runs in its own, benchmarks/.venv-nannyml (``make bench-nannyml``), as a
   subprocess (benchmarks/nannyml_cbpe.py) that writes the data files and its estimates; without
   that virtualenv this part says so in one line. Its usage telemetry is off (NML_DISABLE_USAGE_LOGGING).
4. Feedback ingestion through the real service: uvicorn on a free loopback port, SQLite store,
   ``POST /feedback`` in batches of 10,000 (what ``driftwatch feedback FILE`` sends) against one
   label per request (a per-prediction feedback call, as Seldon's /feedback takes). Target >= 20,000
   labels/s in batch.
5. The join: 1 million logged predictions in the store, 1 million labels for them arrive as one
   batch (``QualityStore.add_labels``: stored, each answered joined/pending/duplicate), then the
   join of all of them in one statement (``QualityStore.joined_count``), against pandas' in-memory
   merge of the same ids. Target < 2 s for the join.

Parts 4 and 5 run on SQLite, and with ``--store sqlite postgresql`` also on a throwaway local
PostgreSQL cluster (driftwatch.postgres, Debian's postgresql package).

Run: .venv/bin/python benchmarks/bench_quality.py [--runs 200] [--join-rows 1000000] [--store sqlite postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality.stats import ConfidenceCalibration, wilson_interval, z_one_sided
from quality.store import Label, Prediction, QualityStore

MARGIN = 0.05
MIN_LABELED = 200
WINDOW = 500
Z = z_one_sided(0.99)
T = TypeVar("T")


def threshold(reference_hits: int, holdout: int) -> float:
    """The rule's bar: reference - margin, or the lower end of the reference's own Wilson interval
    when that is lower (a small holdout)."""
    reference = reference_hits / holdout
    return min(reference - MARGIN, wilson_interval(reference_hits, holdout, Z)[0])


def fires(hits: int, n: int, bar: float, *, bound: str = "upper") -> bool:
    low, high = wilson_interval(hits, n, Z)
    value = high if bound == "upper" else low
    return n >= MIN_LABELED and value < bar


def false_alarms(rng: np.random.Generator, *, p: float, holdout: int, runs: int, labels: int,
                 step: int) -> tuple[float, float, float, int]:
    """Share of evaluations that fire: the rule as committed, the rule without the reference's own
    bound (reference - margin only), and the lower-bound variant."""
    evaluations = alarms = alarms_plain = lower_alarms = 0
    for _ in range(runs):
        reference_hits = int(rng.binomial(holdout, p))
        bar, plain = threshold(reference_hits, holdout), reference_hits / holdout - MARGIN
        correct = rng.random(labels) < p
        cumulative = np.concatenate([[0], np.cumsum(correct)])
        for end in range(step, labels + 1, step):
            start = max(0, end - WINDOW)
            hits, n = int(cumulative[end] - cumulative[start]), end - start
            evaluations += 1
            alarms += fires(hits, n, bar)
            alarms_plain += fires(hits, n, plain)
            lower_alarms += fires(hits, n, plain, bound="lower")
    return alarms / evaluations, alarms_plain / evaluations, lower_alarms / evaluations, evaluations


def labels_to_catch(rng: np.random.Generator, *, p: float, drop: float, holdout: int, runs: int,
                    step: int, limit: int = 20_000) -> list[int]:
    needed = []
    for _ in range(runs):
        bar = threshold(int(rng.binomial(holdout, p)), holdout)
        correct = rng.random(limit) < p - drop
        cumulative = np.concatenate([[0], np.cumsum(correct)])
        caught = limit
        for end in range(step, limit + 1, step):
            start = max(0, end - WINDOW)
            if fires(int(cumulative[end] - cumulative[start]), end - start, bar):
                caught = end
                break
        needed.append(caught)
    return needed


# ---------------------------------------------------------------------- CBPE against NannyML
NANNYML_PYTHON = Path(__file__).resolve().parent / ".venv-nannyml" / "bin" / "python"
NANNYML_RUNNER = Path(__file__).resolve().parent / "nannyml_cbpe.py"


def _nannyml(*args: str) -> None:
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}  # NannyML phones home otherwise
    subprocess.run([str(NANNYML_PYTHON), str(NANNYML_RUNNER), *args], check=True, env=env, timeout=1800)


def cbpe_comparison(chunk_size: int, verbose: bool = False) -> list[str]:
    """Ours and NannyML's CBPE on the same files: NannyML (in its own virtualenv, a subprocess) writes
    its shipped data sets with drift and its per-chunk estimates; we estimate the same chunks here."""
    import pandas as pd

    if not NANNYML_PYTHON.exists():
        return ["cbpe: NannyML's virtualenv benchmarks/.venv-nannyml is missing (`make bench-nannyml` makes it; "
                "NannyML cannot share our virtualenv: it pins botocore below what boto3 needs): comparison skipped"]
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-cbpe-") as tmp:
        _nannyml("export", "--out", tmp)
        for folder in sorted(Path(tmp).iterdir()):
            _nannyml("estimate", str(folder), "--chunk-size", str(chunk_size))
            meta = json.loads((folder / "meta.json").read_text())
            theirs = json.loads((folder / "nannyml.json").read_text())
            ref = pd.read_csv(folder / "reference.csv")
            ana = pd.read_csv(folder / "analysis.csv")
            y_true, proba = meta["y_true"], list(meta["proba"].values())
            if meta["problem"] == "classification_binary":  # the top-class probability, as serving logs it
                ref_conf = np.where(ref["y_pred"] == 1, ref[proba[0]], 1 - ref[proba[0]])
                ana_conf = np.where(ana["y_pred"] == 1, ana[proba[0]], 1 - ana[proba[0]])
            else:
                ref_conf, ana_conf = ref[proba].to_numpy().max(axis=1), ana[proba].to_numpy().max(axis=1)
            started = time.perf_counter()
            ours = ConfidenceCalibration(ref_conf, (ref["y_pred"] == ref[y_true]).to_numpy(float))
            our_errors, their_errors = [], []
            for chunk in theirs["chunks"]:
                start, end = chunk["start"], chunk["end"] + 1
                rows = ana.iloc[start:end]
                realized = float((rows["y_pred"] == rows[y_true]).mean())
                our_errors.append(abs(ours.expected_accuracy(ana_conf[start:end]) - realized))
                their_errors.append(abs(chunk["accuracy"] - realized))
            our_time = time.perf_counter() - started
            ours_mae, theirs_mae = float(np.mean(our_errors)), float(np.mean(their_errors))
            if verbose:
                for i, (a, b) in enumerate(zip(our_errors, their_errors, strict=True)):
                    print(f"  chunk {i}: |ours - realized| {a:.5f}  |NannyML - realized| {b:.5f}")
            lines.append(f"cbpe {meta['title']}: {len(our_errors)} chunks of {chunk_size}: MAE against realized "
                         f"accuracy ours {ours_mae:.5f}, NannyML {theirs['version']} {theirs_mae:.5f} (ratio "
                         f"{ours_mae / theirs_mae:.3f}; goal <= 1); time ours {our_time:.2f} s, NannyML "
                         f"{theirs['seconds']:.2f} s")
    return lines


# ---------------------------------------------------------------------- ingestion and join
def ingestion(labels: int, url: str, backend: str) -> list[str]:
    import httpx
    import orjson
    import uvicorn
    from prometheus_client import CollectorRegistry

    from driftwatch.processes import free_port
    from quality.app import create_app
    from quality.client import send_feedback
    from quality.settings import QualitySettings

    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        home = Path(tmp)
        store = QualityStore(url.replace("HOME", str(home)))
        ids = [uuid.uuid4().hex for _ in range(labels + 2000)]
        now = time.time()
        store.add_predictions([Prediction(pid, "m", "1", now, "0", "a", None, 0.9) for pid in ids])
        port = free_port()
        settings = QualitySettings(registry={"home": home, "model_name": "m"}, port=port, prediction_log_dir=home / "p")
        app = create_app(settings, registry=CollectorRegistry(), source=_NoRegistry(),  # type: ignore[arg-type]

                         store=store, schedule=False)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        items = [{"prediction_id": pid, "actual": i % 3} for i, pid in enumerate(ids[:labels])]
        started, cpu = time.perf_counter(), time.process_time()
        summary = send_feedback(url, items, batch=10_000)
        batch_seconds, batch_cpu = time.perf_counter() - started, time.process_time() - cpu
        assert summary.joined == labels, summary
        single = ids[labels:labels + 2000]
        with httpx.Client() as client:
            started = time.perf_counter()
            for pid in single:
                response = client.post(f"{url}/feedback", content=orjson.dumps({"prediction_id": pid, "actual": 1}),
                                       headers={"Content-Type": "application/json"})
                assert response.status_code == 200
            single_seconds = time.perf_counter() - started
        server.should_exit = True
        thread.join(10)
        batch_rate, single_rate = labels / batch_seconds, len(single) / single_seconds
        lines.append(f"feedback ingestion ({backend}): {labels:,} labels in batches of 10,000 over HTTP: "
                     f"{batch_rate:,.0f} labels/s wall, {labels / batch_cpu:,.0f} labels per CPU-second of this "
                     f"process (client and service in it) (target >= 20,000/s) vs one label per request "
                     f"{single_rate:,.0f} labels/s: {batch_rate / single_rate:.0f}x")
    return lines


class _NoRegistry:
    def get_version(self, version: str, *, with_metrics: bool = True) -> object:
        raise RuntimeError("not used")

    def download_reference(self, version: str, dst: Path) -> Path:
        raise RuntimeError("not used")


def _timed(action: Callable[[], T]) -> tuple[T, float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - started, time.process_time() - cpu


def join(rows: int, url: str, backend: str) -> list[str]:
    """1M predictions in the store, 1M labels for them arrive in one batch (``add_labels``: into the
    labels table, each answered joined/pending/duplicate), then the join of the two (one statement
    over all of them) and the window the evaluation reads."""
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="bench-quality-join-") as tmp:
        store = QualityStore(url.replace("HOME", tmp))
        rng = np.random.default_rng(0)
        raw = rng.bytes(16 * rows)
        ids = [raw[i:i + 16].hex() for i in range(0, 16 * rows, 16)]  # 128 random bits, as serving hands out
        now = time.time()
        started = time.perf_counter()
        for start in range(0, rows, 100_000):
            store.add_predictions([Prediction(pid, "m", "1", now + i * 1e-3, "0", "a", None, 0.9)
                                   for i, pid in enumerate(ids[start:start + 100_000], start)])
        load_seconds = time.perf_counter() - started
        labels = [Label(pid, str(i % 3), float(i % 3), now + 60) for i, pid in enumerate(reversed(ids))]
        outcome, label_seconds, label_cpu = _timed(lambda: store.add_labels(labels, received_at=now + 61))
        assert len(outcome.joined) == rows
        joined, join_seconds, join_cpu = _timed(lambda: store.joined_count("m"))
        assert joined == rows, joined
        window, window_seconds, _ = _timed(lambda: store.newest_labeled("m", "1", 500))
        assert len(window) == 500
        predictions = pd.DataFrame({"prediction_id": ids, "predicted": "0", "confidence": 0.9})
        actuals = pd.DataFrame({"prediction_id": [label.prediction_id for label in labels],
                                "actual": [label.actual for label in labels]})
        merged, pandas_seconds, pandas_cpu = _timed(lambda: predictions.merge(actuals, on="prediction_id"))
        assert len(merged) == rows
        store.close()
    cpu_note = "" if backend == "sqlite" else " (the database's own CPU is in the server process, not counted)"
    return [f"join ({backend}): {rows:,} labels for {rows:,} stored predictions: storing the batch (answered "
            f"joined/pending/duplicate) {label_seconds:.2f} s wall, {label_cpu:.2f} CPU-s = {rows / label_seconds:,.0f} "
            f"labels/s; the join of all of them (one statement) {join_seconds:.2f} s wall, {join_cpu:.2f} CPU-s "
            f"(target < 2 s); both {label_seconds + join_seconds:.2f} s. pandas' in-memory merge of the same ids "
            f"{pandas_seconds:.2f} s wall, {pandas_cpu:.2f} CPU-s (nothing persisted). Loading the predictions "
            f"{rows / load_seconds:,.0f} rows/s; newest-500 window read {window_seconds * 1000:.1f} ms{cpu_note}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--holdout", type=int, default=300, help="holdout rows behind the reference accuracy")
    parser.add_argument("--accuracy", type=float, default=0.92, help="true accuracy of the good version")
    parser.add_argument("--step", type=int, default=50, help="new labels between two evaluations")
    parser.add_argument("--labels", type=int, default=5000, help="labels per false-alarm run")
    parser.add_argument("--join-rows", type=int, default=1_000_000)
    parser.add_argument("--feedback-labels", type=int, default=200_000)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--store", nargs="+", default=["sqlite"], choices=["sqlite", "postgresql"],
                        help="stores to measure ingestion and the join on (postgresql: a local cluster, Debian's "
                             "postgresql package)")
    parser.add_argument("--verbose", action="store_true", help="print the CBPE error of every chunk")
    parser.add_argument("--skip", nargs="*", default=[], choices=["alerts", "cbpe", "ingestion", "join"])
    args = parser.parse_args()
    rng = np.random.default_rng(12)
    def report(lines: list[str]) -> None:  # printed as they come: a long run keeps what it measured
        print("\n".join(lines), flush=True)

    if "alerts" not in args.skip:
        for holdout in (args.holdout, 30):
            rule, plain, lower, evaluations = false_alarms(rng, p=args.accuracy, holdout=holdout, runs=args.runs,
                                                           labels=args.labels, step=args.step)
            report([f"false alarms on a good version (accuracy {args.accuracy}, reference from {holdout} holdout "
                    f"rows, {evaluations:,} evaluations): {rule:.2%} of evaluations (target <= 1%); without the "
                    f"reference's own bound {plain:.2%}; with the live Wilson lower bound instead {lower:.2%}"])
        for holdout in (args.holdout, 30):
            needed = labels_to_catch(rng, p=args.accuracy, drop=0.10, holdout=holdout, runs=args.runs,
                                     step=args.step)
            caught = np.array(needed) < 20_000
            report([f"labels to catch a 10-point drop ({args.accuracy} -> {args.accuracy - 0.1:.2f}, reference "
                    f"from {holdout} rows): median {int(np.median(needed))}, 90th percentile "
                    f"{int(np.percentile(needed, 90))}, caught within 20,000 labels in {np.mean(caught):.0%} of runs "
                    f"(minimum {MIN_LABELED}, evaluated every {args.step})"])
    if "cbpe" not in args.skip:
        report(cbpe_comparison(args.chunk_size, args.verbose))
    backends: list[tuple[str, Callable[[str], str]]] = []
    if "sqlite" in args.store:
        backends.append(("sqlite", lambda _phase: "sqlite:///HOME/quality.db"))
    with contextlib.ExitStack() as stack:
        if "postgresql" in args.store:
            from driftwatch.postgres import start_postgres

            pg = stack.enter_context(start_postgres())
            backends.append(("postgresql", lambda phase: pg.create_database(f"bench_quality_{phase}")))
        for backend, url in backends:
            if "ingestion" not in args.skip:
                report(ingestion(args.feedback_labels, url("ingestion"), backend))
            if "join" not in args.skip:
                report(join(args.join_rows, url("join"), backend))
    load = os.getloadavg()[0]
    print(f"(load average {load:.1f} on {os.cpu_count()} cores when the run ended: wall times include waiting for "
          "the CPU; CPU-seconds are this process's own)")


if __name__ == "__main__":
    main()
