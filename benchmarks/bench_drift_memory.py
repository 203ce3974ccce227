"""Resident memory of the drift exporter with a 1 GB prediction log folder against a 10 MB one.

Inputs: Iris logistic regression v1 registered and promoted in an embedded (SQLite) registry in a
temporary DRIFTWATCH_HOME; two log folders in the docs/contract.md record format, written in the layout
serving uses (``predictions-<instance>.jsonl`` rotated to ``.1`` ... ``.N``), timestamps within the
last hour:
  small: 2 instances x 5 files x 1 MiB   = 10 MiB
  large: 8 instances x 8 files x 16 MiB  = 1 GiB
The real exporter process (``python -m drift_exporter``, interval 1 s, window of 2000 rows, the
default) runs against each folder until it has finished --checks checks; we read its peak (VmHWM)
and current (VmRSS) resident memory from /proc and the check durations from /drift. The folders live in a
temporary directory that is deleted afterwards.

Target: peak resident memory with the 1 GB folder within 50 MB of the 10 MB one.

Run: .venv/bin/python benchmarks/bench_drift_memory.py [--checks 5] [--window-rows 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_registry import RegistrySettings
from model_registry.training import train_and_register
from tests.support.procs import free_port, stop_process, wait_for_http

MIB = 1024 * 1024
CLASSES = ("setosa", "versicolor", "virginica")


def write_folder(folder: Path, *, instances: int, files: int, file_bytes: int, model_name: str) -> int:
    """Write the folder; returns its size in bytes. Timestamps run up to now, newest in the live file."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    values = rng.normal([5.8, 3.0, 3.8, 1.2], [0.8, 0.4, 1.7, 0.7], size=(4096, 4)).round(2)

    def line(instance: int, i: int, ts: float) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
        f = values[(i * 7 + instance) % 4096]
        c = i % 3
        return (f'{{"timestamp": "{seconds}.{int(ts * 1000) % 1000:03d}Z", "event": "prediction", '
                f'"prediction_id": "{instance:02d}{i:030d}", "features": {{"sepal_length": {f[0]}, '
                f'"sepal_width": {f[1]}, "petal_length": {f[2]}, "petal_width": {f[3]}}}, '
                f'"prediction": {{"class_id": {c}, "class_name": "{CLASSES[c]}", "probability": 0.93}}, '
                f'"model": {{"name": "{model_name}", "version": "1", "source": "models:/{model_name}@production"}}, '
                f'"latency_ms": 0.41}}\n')

    lines_per_file = file_bytes // len(line(0, 0, time.time()).encode())
    total_lines = lines_per_file * files
    now = time.time()
    step = 3000.0 / total_lines  # the whole history of an instance spans the last 50 minutes
    size = 0
    for instance in range(instances):
        for rotation in range(files - 1, -1, -1):  # oldest rotation first, live file last
            name = f"predictions-bench{instance}.jsonl" + (f".{rotation}" if rotation else "")
            first = (files - 1 - rotation) * lines_per_file
            parts = [line(instance, i, now - 3000.0 + i * step) for i in range(first, first + lines_per_file)]
            data = "".join(parts).encode()
            (folder / name).write_bytes(data)
            size += len(data)
    return size


def peak_memory(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {line.split(":")[0]: line.split(":")[1].strip() for line in status.splitlines() if ":" in line}
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def measure(home: Path, folder: Path, model_name: str, checks: int, window_rows: int) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "DRIFTWATCH_HOME": str(home), "DRIFTWATCH_MODEL_NAME": model_name,
           "DRIFTWATCH_PREDICTION_LOG_DIR": str(folder), "DRIFTWATCH_DRIFT_PORT": str(port),
           "DRIFTWATCH_DRIFT_INTERVAL_SECONDS": "1", "DRIFTWATCH_DRIFT_WINDOW_ROWS": str(window_rows),
           "DRIFTWATCH_DRIFT_MIN_WINDOW_ROWS": str(window_rows)}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = home / f"exporter-{folder.name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "drift_exporter"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", timeout=120, proc=proc, log=log)
        durations: list[float] = []
        seen: set[str] = set()
        deadline = time.monotonic() + 120
        while len(durations) < checks and time.monotonic() < deadline:
            run = httpx.get(f"{url}/drift", timeout=10).json()["run"]
            if run["finished_at"] and run["finished_at"] not in seen:
                seen.add(run["finished_at"])
                if run["status"] != "ok":
                    raise SystemExit(f"check did not succeed: {run}")
                durations.append(float(run["duration_seconds"]))
            time.sleep(0.2)
        rows = httpx.get(f"{url}/drift", timeout=10).json()["result"]["window_rows"]
        peak, current = peak_memory(proc.pid)
    finally:
        stop_process(proc)
    return {"peak_mib": peak, "rss_mib": current, "median_check_s": float(np.median(durations)),
            "checks": len(durations), "window_rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=int, default=5)
    parser.add_argument("--window-rows", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    tmp = Path(tempfile.mkdtemp(prefix="driftwatch-bench-memory-"))
    try:
        home = tmp / "home"
        settings = RegistrySettings(home=home, model_name="iris-bench", tracking_uri=None)
        train_and_register(settings, promote=True)
        results = {}
        for label, instances, files, file_bytes in (("10 MB", 2, 5, 1 * MIB), ("1 GB", 8, 8, 16 * MIB)):
            folder = tmp / f"logs-{label.replace(' ', '')}"
            started = time.perf_counter()
            size = write_folder(folder, instances=instances, files=files, file_bytes=file_bytes,
                                model_name="iris-bench")
            print(f"[{label}] wrote {size / MIB:.0f} MiB in {instances * files} files "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
            results[label] = measure(home, folder, "iris-bench", args.checks, args.window_rows)
            shutil.rmtree(folder)
            r = results[label]
            print(f"[{label}] exporter peak RSS {r['peak_mib']:.1f} MiB, RSS {r['rss_mib']:.1f} MiB, "
                  f"median check {r['median_check_s'] * 1000:.0f} ms over {r['checks']} checks, "
                  f"window {r['window_rows']} rows", flush=True)
        delta = results["1 GB"]["peak_mib"] - results["10 MB"]["peak_mib"]
        print(f"peak RSS difference (1 GB folder - 10 MB folder): {delta:+.1f} MiB (target: within 50 MB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
