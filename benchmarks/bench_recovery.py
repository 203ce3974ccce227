"""Time to recover: from the promotion of a bad version to the good version serving again,
next to its floor (scrape interval + evaluation interval + the alert's `for:` + Alertmanager's
`group_wait` + the serving poll interval), on the demo timing of `driftwatch demo`.

Inputs: Iris logistic regression v1 (good), v2 with fault errors=0.5, 20 requests/s of training-like
rows, the stack of `driftwatch up` with timing="demo" on 127.0.0.1, embedded SQLite registry in a
temporary DRIFTWATCH_HOME. Target: time to recover within 10 s of the floor.

Run: .venv/bin/python benchmarks/bench_recovery.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftwatch.scenario import run_scenario
from driftwatch.stack import Stack, StackSettings
from driftwatch.timing import recovery_floor
from tests.support.procs import free_port


def one_run(home: Path) -> tuple[float, dict[str, float]]:
    settings = StackSettings(
        home=home, serving_port=free_port(), drift_exporter_port=free_port(), webhook_port=free_port(),
        prometheus_port=free_port(), alertmanager_port=free_port(), slack_sink_port=free_port(),
    )
    stack = Stack(settings, timing="demo", say=lambda _: None)
    try:
        result = run_scenario(stack, drift=False, quality=False)
    finally:
        stack.stop()
    if result.recovery_seconds is None:
        raise SystemExit("the scenario did not recover:\n" + result.report())
    return result.recovery_seconds, recovery_floor(stack.dir / "monitoring", poll_interval=stack.poll_interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    if args.one:  # one run in a fresh process: MLflow keeps per-process state about its stores
        with tempfile.TemporaryDirectory(prefix="driftwatch-bench-") as tmp:
            seconds, floor = one_run(Path(tmp))
        print("RESULT " + json.dumps({"seconds": seconds, "floor": floor}), flush=True)
        return
    recoveries: list[float] = []
    floor: dict[str, float] = {}
    for i in range(args.runs):
        done = subprocess.run([sys.executable, __file__, "--one"], capture_output=True, text=True, timeout=600)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"run {i + 1} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        result = json.loads(line.removeprefix("RESULT "))
        floor = result["floor"]
        recoveries.append(result["seconds"])
        print(f"run {i + 1}: time_to_recover={result['seconds']:.1f}s", flush=True)
    parts = " + ".join(f"{k} {v:g}s" for k, v in floor.items() if k != "total")
    median = statistics.median(recoveries)
    print(f"floor: {parts} = {floor['total']:.1f}s")
    print(f"time_to_recover_median={median:.1f}s floor={floor['total']:.1f}s excess={median - floor['total']:+.1f}s "
          f"ratio={median / floor['total']:.2f} target: excess <= 10s -> {'met' if median - floor['total'] <= 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
