"""Serving replicas behind nginx, and the drift check over many replicas' logs, in one run.

1. Throughput through the load balancer (`driftwatch up --replicas N`'s nginx and serving processes,
   started by the same code): wrk with 2 threads and 8 connections posts one Iris row per request
   to `/predict` for `--duration` seconds, against
     - one serving process directly (the peer: what `driftwatch up` runs without replicas),
     - nginx in front of 1 replica (the balancer's own cost),
     - nginx in front of 2 replicas (the scaling).
   Rounds alternate the three (`--rounds`, median per setup). Everything shares this machine's
   cores with wrk itself, so the scaling says what a second replica buys *here*; the figures per
   setup are printed so the reader can see where the cores went.
2. The drift check with the same window over 1 and over 8 replicas' prediction logs: the same
   40 000 rows (4 numeric features) written by serving's own log writer code (JSON lines, rotated
   by size) either into one instance's files or spread over 8 instances with interleaved
   timestamps; the check is the drift exporter's window read (newest 2 000 rows, merged by time
   across files) plus `compute_drift` on a reference prepared once. Median of `--runs`.
   Target: 8 replicas cost about the same as 1 (the cost follows the window, not the replicas).

Run: .venv/bin/python benchmarks/bench_fleet.py [--duration 10] [--rounds 3] [--runs 7] [--part all|throughput|drift]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_serving import ROW, Run, wrk
from driftwatch.balancer import nginx_binary, write_nginx_config
from driftwatch.stack import Stack, StackSettings
from tests.support.procs import free_port

WINDOW_ROWS = 2000
LOG_ROWS = 40_000
FEATURES = ("f0", "f1", "f2", "f3")


# ---------------------------------------------------------------------- 1. throughput
def serving_fleet(home: Path, replicas: int | None) -> Stack:
    """Serving processes (and nginx when ``replicas``) exactly as `driftwatch up` starts them."""
    ports = [free_port() for _ in range(replicas or 0)]
    settings = StackSettings(home=home, serving_port=free_port(), serving_replicas=replicas,
                             serving_replica_ports=",".join(map(str, ports)))
    stack = Stack(settings, say=lambda _: None)
    stack.dir.mkdir(parents=True, exist_ok=True)
    specs = stack.serving_specs()
    if replicas:
        write_nginx_config(stack.balancer_config())
        stack.supervisor.start_together(specs[:-1])
        stack.supervisor.start(specs[-1])
    else:
        stack.supervisor.start_together(specs)
    return stack


def throughput(args: argparse.Namespace) -> None:
    from model_registry import RegistrySettings
    from model_registry.training import train_and_register

    nginx_binary()  # fail early, with the install hint
    import json

    body = json.dumps({"features": ROW})
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        home = Path(tmp) / "home"
        train_and_register(RegistrySettings(home=home), promote=True, actor="bench")
        setups = {"1 process, no balancer": None, "nginx + 1 replica": 1, "nginx + 2 replicas": 2}
        runs: dict[str, list[Run]] = {name: [] for name in setups}
        for round_no in range(args.rounds):
            for name, replicas in setups.items():
                stack = serving_fleet(home, replicas)
                try:
                    wrk(f"{stack.urls.serving}/predict", body, Path(tmp), duration=2)  # warm-up
                    run = wrk(f"{stack.urls.serving}/predict", body, Path(tmp), duration=args.duration)
                finally:
                    stack.supervisor.stop_all()
                if run.non_2xx or run.errors:
                    raise SystemExit(f"{name}: {run.non_2xx} non-2xx answers, {run.errors} socket errors")
                runs[name].append(run)
                print(f"  round {round_no + 1}: {name:24s} {run.describe()}", flush=True)
        median = {name: statistics.median(r.rps for r in found) for name, found in runs.items()}
        print("\nThroughput, one Iris row per /predict, wrk -t2 -c8, median of "
              f"{args.rounds} rounds of {args.duration}s:")
        for name, rps in median.items():
            print(f"  {name:24s} {rps:8.0f} req/s")
        direct, one, two = median.values()
        print(f"  nginx + 1 replica / 1 process:   {one / direct:.2f}  (the balancer's cost)")
        print(f"  nginx + 2 replicas / 1 process:  {two / direct:.2f}")
        print(f"  scaling, 2 replicas / 1 replica: {two / one:.2f}  (2.00 would be linear; 2 cores shared with "
              "wrk and nginx)")


# ---------------------------------------------------------------------- 2. drift check over replicas' logs
def write_logs(folder: Path, instances: int, rng: np.random.Generator, start: float) -> None:
    """LOG_ROWS prediction records through serving's log writer code, spread over ``instances``."""
    from driftwatch.prediction_record import prediction_record, to_lines
    from serving.log_writer import RotatingFile

    files = [RotatingFile(folder, f"replica-{i}", max_bytes=1 << 20, backups=1000) for i in range(instances)]
    values = rng.normal(size=(LOG_ROWS, len(FEATURES)))
    model = {"name": "bench", "version": "1", "source": "models:/bench@production"}
    batches: list[list[dict[str, object]]] = [[] for _ in range(instances)]
    for i in range(LOG_ROWS):  # row i goes to replica i % instances: timestamps interleave
        features = dict(zip(FEATURES, (round(float(v), 4) for v in values[i]), strict=True))
        batches[i % instances].append(prediction_record(start + i * 0.01, f"{i:032x}", features, 0, "a", 0.9, model,
                                                        1.0, i // instances + 1))
    for handle, batch in zip(files, batches, strict=True):
        for chunk in range(0, len(batch), 500):
            handle.write(to_lines(batch[chunk:chunk + 500]))
        handle.close()


def drift_check(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression

    from drift_exporter.check import compute_drift
    from drift_exporter.decisions import DriftPolicy
    from drift_exporter.reference import prepare_reference
    from drift_exporter.window import LogReader
    from model_registry.reference import build_reference

    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(5000, len(FEATURES))), columns=list(FEATURES))
    labels = (train["f0"] > 0).astype(int)
    model = LogisticRegression().fit(train, labels)
    reference = prepare_reference(build_reference(model, train, ["a", "b"], model_name="bench", max_rows=5000),
                                  model_name="bench", version="1")
    policy = DriftPolicy(min_window_rows=WINDOW_ROWS)
    start = time.time() - LOG_ROWS * 0.01 - 60
    timings: dict[int, list[float]] = {1: [], 8: []}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-drift-") as tmp:
        readers: dict[int, LogReader] = {}
        for instances in timings:
            folder = Path(tmp) / f"{instances}-replicas"
            write_logs(folder, instances, rng, start)
            readers[instances] = LogReader(folder)

        def check(instances: int) -> float:
            began = time.perf_counter()
            window = readers[instances].read(features=reference.feature_names, numeric=reference.numeric_names,
                                             max_rows=WINDOW_ROWS, max_age_seconds=None, now=time.time(),
                                             model_name="bench")
            compute_drift(reference, window, policy)
            elapsed = time.perf_counter() - began
            assert window.rows == WINDOW_ROWS and len(window.instances) == instances, window.instances
            return elapsed

        for instances in timings:  # warm-up: imports, caches
            check(instances)
        for _ in range(args.runs):  # alternated, so load from elsewhere falls on both alike
            for instances in timings:
                timings[instances].append(check(instances))
        for instances, seconds in timings.items():
            files = len(list((Path(tmp) / f"{instances}-replicas").iterdir()))
            print(f"  {instances} replica(s): {files} log files: {statistics.median(seconds) * 1000:.1f} ms "
                  f"(min {min(seconds) * 1000:.1f})", flush=True)
    one, eight = (statistics.median(timings[n]) for n in (1, 8))
    print(f"\nDrift check (window read + compute_drift), {WINDOW_ROWS}-row window of {LOG_ROWS} logged rows, "
          f"median of {args.runs}:")
    print(f"  1 replica's logs:  {one * 1000:.1f} ms\n  8 replicas' logs: {eight * 1000:.1f} ms")
    print(f"  8 replicas / 1 replica: {eight / one:.2f}  (target: about 1; the cost follows the window)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per setup and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=7, help="drift checks timed per setup")
    parser.add_argument("--part", choices=["all", "throughput", "drift"], default="all")
    args = parser.parse_args()
    if args.part in ("all", "drift"):
        print("== drift check over 1 and 8 replicas' prediction logs", flush=True)
        drift_check(args)
    if args.part in ("all", "throughput"):
        print("\n== throughput through the load balancer", flush=True)
        throughput(args)


if __name__ == "__main__":
    main()
