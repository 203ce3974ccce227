"""Serving against `mlflow models serve`, on the same registered model, with the same load, in one run.

Inputs: Iris logistic regression (`train_and_register`, seed 0) registered and promoted in an
embedded SQLite registry in a temporary DRIFTWATCH_HOME; one Iris row per request; wrk with
2 threads and 8 connections on 127.0.0.1; `--duration` seconds per wrk run (default 10).
`mlflow models serve --env-manager local` (its defaults: one uvicorn worker) answers
`/invocations` with a `dataframe_split` body; this service answers `/predict` (`{"features": {...}}`)
and `/invocations` (the same body as MLflow's), as `python -m serving` runs it: one process, metrics
and prediction log on, unless said otherwise.

Figures (targets from issue 3):
- throughput at saturation, this service / MLflow (>= 10x), for /predict and /invocations;
- p99 latency at a fixed 200 requests/s (wrk paced by a Lua clock), this service / MLflow (<= 1/5);
- cost of metrics + prediction log: throughput with both off / with both on, runs alternated (<= 5%).

Before timing anything it checks that both servers give the same answers: /invocations on every
reference row in the four JSON formats, and /predict's class ids.

Run: .venv/bin/python benchmarks/bench_serving.py [--duration 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_registry import ModelRegistry, RegistrySettings
from model_registry.reference import read_reference
from model_registry.training import train_and_register
from tests.support.procs import free_port, wait_for_http

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
THREADS, CONNECTIONS, RATE = 2, 8, 200

PACED_LUA = """
-- Paces each wrk thread to a fixed schedule (requests/s given after --), whatever the latency.
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } timespec; int clock_gettime(int, timespec *); ]]
local ts = ffi.new("timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval, next_at
function init(args) interval = 1000 / tonumber(args[1]) end
function delay()
  local now = now_ms()
  if next_at == nil then next_at = now end
  next_at = next_at + interval
  if next_at < now then return 0 end
  return next_at - now
end
"""


@dataclass
class Run:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    cpu_us: float = 0.0  # server CPU time (user + system, all threads, its log writer too) per request

    def describe(self) -> str:
        return f"{self.rps:.0f} req/s (p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms)"


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (the prediction log writer), all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split() if (task / "children").exists() else []
        total += sum(cpu_seconds(int(child)) for child in children)
    return total


def wrk(url: str, body: str, work: Path, *, duration: int, rate: int | None = None, pid: int | None = None) -> Run:
    request = work / "request.lua"
    script = PACED_LUA if rate else ""
    script += (f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
               'wrk.headers["Content-Type"] = "application/json"\n')
    request.write_text(script)
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "-s", str(request), url]
    if rate:
        command += ["--", str(rate / THREADS)]
    cpu_before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before if pid else 0.0
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Run(requests, rps, p50, p99, non_2xx, errors, cpu / max(requests, 1) * 1e6)


@contextmanager
def server(name: str, command: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[int]:
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(ready_url, timeout=240, proc=proc, log=log)
        yield proc.pid
    finally:
        # mlflow models serve runs uvicorn as a child: stop the whole session this benchmark started.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass  # already gone


def check_same_answers(mlflow_url: str, ours_url: str, rows: list[dict[str, float]]) -> int:
    names = list(rows[0])
    formats = {
        "dataframe_split": {"dataframe_split": {"columns": names, "data": [[r[n] for n in names] for r in rows]}},
        "dataframe_records": {"dataframe_records": rows},
        "instances": {"instances": rows},
        "inputs": {"inputs": {n: [r[n] for r in rows] for n in names}},
    }
    with httpx.Client(timeout=60) as client:
        for fmt, body in formats.items():
            want = client.post(f"{mlflow_url}/invocations", json=body)
            got = client.post(f"{ours_url}/invocations", json=body)
            if want.status_code != 200 or got.status_code != 200 or want.json() != got.json():
                raise SystemExit(f"/invocations differs from mlflow models serve for {fmt}: "
                                 f"{want.status_code} {want.text[:200]} vs {got.status_code} {got.text[:200]}")
        predicted = client.post(f"{ours_url}/predict", json={"instances": rows}).json()["predictions"]
        if [p["class_id"] for p in predicted] != want.json()["predictions"]:
            raise SystemExit("/predict class ids differ from mlflow models serve's predictions")
    return len(rows)


def bench_env(home: Path) -> dict[str, str]:
    """The environment of the servers a benchmark starts (an embedded registry in ``home``), also
    applied to this process, which registers the models."""
    # mlflow models serve execs `uvicorn`: the virtualenv's bin folder must be on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "DRIFTWATCH_HOME": str(home), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "PYTHONWARNINGS": "ignore"}
    env.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("DRIFTWATCH_", "MLFLOW_"))})
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=4, help="alternated on/off pairs for the overhead figure")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk)")
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="driftwatch-bench-serving-") as tmp:
        work = Path(tmp)
        home = work / "home"
        base_env = bench_env(home)
        settings = RegistrySettings(home=home)
        trained = train_and_register(settings, promote=True)
        version = str(trained.version)
        reference = read_reference(ModelRegistry(settings).download_reference(version, work / "ref"))
        rows = [{k: float(v) for k, v in r.items()} for r in reference.features.to_dict(orient="records")]
        tracking = settings.resolved_tracking_uri

        ports = {"mlflow": free_port(), "on": free_port(), "off": free_port()}
        mlflow_url, on_url, off_url = (f"http://127.0.0.1:{ports[k]}" for k in ("mlflow", "on", "off"))
        serving_env = {**base_env, "MLFLOW_TRACKING_URI": tracking, "DRIFTWATCH_SERVING_HOST": "127.0.0.1"}
        split_body = json.dumps({"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}})
        predict_body = json.dumps({"features": ROW})
        print(f"inputs: {settings.model_name} v{version} (logreg, test_accuracy "
              f"{trained.metrics['test_accuracy']:.3f}); 1 row per request; wrk -t{THREADS} -c{CONNECTIONS} "
              f"{args.duration}s per run; {os.cpu_count()} CPUs shared; all servers on 127.0.0.1", flush=True)
        with server("mlflow models serve",
                    [py, "-m", "mlflow", "models", "serve", "-m", f"models:/{settings.model_name}/{version}",
                     "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports["mlflow"])],
                    {**base_env, "MLFLOW_TRACKING_URI": tracking}, f"{mlflow_url}/ping", work / "mlflow.log"), \
             server("serving (metrics + log on)", [py, "-m", "serving"],
                    {**serving_env, "DRIFTWATCH_SERVING_PORT": str(ports["on"]), "DRIFTWATCH_SERVING_INSTANCE": "on",
                     # rotates every 32 MB as usual, but keeps every file, so the lines can be counted
                     "DRIFTWATCH_PREDICTION_LOG_MAX_BYTES": str(32 * 1024 * 1024),
                     "DRIFTWATCH_PREDICTION_LOG_BACKUPS": "100"},
                    f"{on_url}/health", work / "serving-on.log") as on_pid, \
             server("serving (metrics + log off)", [py, "-m", "serving"],
                    {**serving_env, "DRIFTWATCH_SERVING_PORT": str(ports["off"]), "DRIFTWATCH_SERVING_INSTANCE": "off",
                     "DRIFTWATCH_METRICS_ENABLED": "false", "DRIFTWATCH_PREDICTION_LOG_ENABLED": "false"},
                    f"{off_url}/health", work / "serving-off.log") as off_pid:
            checked = check_same_answers(mlflow_url, on_url, rows)
            backend = httpx.get(f"{on_url}/health").json()["inference_backend"]
            print(f"answers: /invocations identical to mlflow models serve on {checked} reference rows x 4 JSON "
                  f"formats; /predict class ids identical (inference backend: {backend})", flush=True)

            d = args.duration
            mlflow_sat = wrk(f"{mlflow_url}/invocations", split_body, work, duration=d)
            predict_sat = wrk(f"{on_url}/predict", predict_body, work, duration=d, pid=on_pid)
            invocations_sat = wrk(f"{on_url}/invocations", split_body, work, duration=d)
            mlflow_paced = wrk(f"{mlflow_url}/invocations", split_body, work, duration=d, rate=RATE)
            predict_paced = wrk(f"{on_url}/predict", predict_body, work, duration=d, rate=RATE)
            # Pairs of runs, the order alternating (on/off, off/on, ...), so that drift in what else
            # the machine does falls on both sides; the figure is the median of the pairs.
            on_runs, off_runs = [], []
            for i in range(args.rounds):
                order = [("on", on_url, on_pid), ("off", off_url, off_pid)]
                for label, url, pid in order if i % 2 == 0 else order[::-1]:
                    run = wrk(f"{url}/predict", predict_body, work, duration=d, pid=pid)
                    (on_runs if label == "on" else off_runs).append(run)

        # Counted after the graceful stop, which flushes the log; the answer check made 5 x len(rows) predictions.
        logged = sum(sum(1 for line in path.open("rb") if b'"event":"prediction"' in line)
                     for path in (home / "predictions").glob("predictions-on.jsonl*"))
        answered = 5 * len(rows) + sum(r.requests - r.non_2xx
                                       for r in (predict_sat, invocations_sat, predict_paced, *on_runs))
        runs = [mlflow_sat, predict_sat, invocations_sat, mlflow_paced, predict_paced, *on_runs, *off_runs]
        bad = sum(r.non_2xx + r.errors for r in runs)
        on_rps = statistics.median(r.rps for r in on_runs)
        off_rps = statistics.median(r.rps for r in off_runs)
        cost = statistics.median(1 - on.rps / off.rps for on, off in zip(on_runs, off_runs, strict=True))
        cpu_cost = statistics.median(on.cpu_us / off.cpu_us - 1 for on, off in zip(on_runs, off_runs, strict=True))
        on_cpu = statistics.median(r.cpu_us for r in on_runs)
        off_cpu = statistics.median(r.cpu_us for r in off_runs)
        predict_ratio = predict_sat.rps / mlflow_sat.rps
        invocations_ratio = invocations_sat.rps / mlflow_sat.rps
        p99_ratio = predict_paced.p99_ms / mlflow_paced.p99_ms

        def verdict(ok: bool) -> str:
            return "met" if ok else "NOT met"

        print(f"throughput mlflow /invocations: {mlflow_sat.describe()}")
        print(f"throughput serving /predict: {predict_sat.describe()} -> {predict_ratio:.1f}x mlflow "
              f"(target >= 10x: {verdict(predict_ratio >= 10)})")
        print(f"throughput serving /invocations: {invocations_sat.describe()} -> {invocations_ratio:.1f}x mlflow")
        print(f"p99 at {RATE} req/s: mlflow {mlflow_paced.p99_ms:.2f} ms ({mlflow_paced.rps:.0f} req/s achieved), "
              f"serving /predict {predict_paced.p99_ms:.2f} ms ({predict_paced.rps:.0f} req/s achieved) -> "
              f"{p99_ratio:.3f} of mlflow = 1/{1 / p99_ratio:.0f} (target <= 1/5: {verdict(p99_ratio <= 0.2)})")
        print(f"metrics + prediction log cost: throughput {on_rps:.0f} req/s on vs {off_rps:.0f} req/s off (medians "
              f"of {len(on_runs)} alternated pairs) -> {cost * 100:.1f}% lower (median of pairs; target <= 5%: "
              f"{verdict(cost <= 0.05)}); server CPU per request {on_cpu:.0f} us on vs {off_cpu:.0f} us off -> "
              f"{cpu_cost * 100:+.1f}% (median of pairs)")
        print(f"failed requests across all runs: {bad}; prediction log of the 'on' server: {logged} lines for "
              f"{answered} predictions counted by wrk (wrk does not count requests in flight when a run ends)")


if __name__ == "__main__":
    main()
