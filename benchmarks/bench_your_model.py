"""Serving your own model against `mlflow models serve` on the same registered model, same run (issue #11).

Two models that are not Iris, each registered with `driftwatch.register` in an embedded SQLite
registry in a temporary DRIFTWATCH_HOME:

- a gradient-boosting regressor (5 numeric features; served through ONNX when it gives scikit-learn's
  values to 1e-5, relative);
- a Pipeline with a ColumnTransformer (one-hot string codes "01"/"NA", scaled numbers) and string
  labels (ONNX with one input per column, when it gives scikit-learn's answers).

One row per request, `dataframe_split` on /invocations for both servers (and `{"features": ...}` on
our /predict), wrk with 2 threads and 8 connections on 127.0.0.1, `--duration` seconds per run.
Before timing, both servers must answer the same on 200 rows. Prints one line per figure with the
ratio (goal >= 10x where the one-row path can use ONNX).

Run: .venv/bin/python benchmarks/bench_your_model.py [--duration 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_serving import CONNECTIONS, THREADS, bench_env, server, wrk
from model_registry import RegistrySettings
from model_registry.register import register
from serving.predictor import VALUE_TOLERANCE
from tests.support.procs import free_port


def regressor(rng: np.random.Generator) -> tuple[Any, pd.DataFrame, pd.Series]:
    from sklearn.ensemble import GradientBoostingRegressor

    x = pd.DataFrame(rng.normal(0, 1, (2000, 5)), columns=[f"x{i}" for i in range(5)])
    y = 50 + 10 * x["x0"] - 5 * x["x1"] + 3 * x["x2"] * x["x3"] + rng.normal(0, 1, len(x))
    return GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0).fit(x, y), x, y


def pipeline(rng: np.random.Generator) -> tuple[Any, pd.DataFrame, pd.Series]:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    n = 2000
    x = pd.DataFrame({"region": rng.choice(["01", "02", "NA"], n), "plan": rng.choice(["basic", "pro"], n),
                      "charges": rng.normal(70, 15, n), "tenure": rng.integers(1, 72, n)})
    y = pd.Series(np.where((x["charges"] - 70) / 15 - x["tenure"] / 36 + rng.normal(0, 0.3, n) > 0, "yes", "no"))
    model = Pipeline([("encode", ColumnTransformer([
        ("codes", OneHotEncoder(handle_unknown="ignore"), ["region", "plan"]),
        ("numbers", StandardScaler(), ["charges", "tenure"])])), ("clf", LogisticRegression(max_iter=1000))])
    return model.fit(x, y), x, y


def split_body(frame: pd.DataFrame) -> str:
    return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))})


def same_answers(mlflow_url: str, ours_url: str, rows: pd.DataFrame) -> str:
    with httpx.Client(timeout=30) as client:
        theirs = client.post(f"{mlflow_url}/invocations", content=split_body(rows),
                             headers={"Content-Type": "application/json"}).json()["predictions"]
        ours = client.post(f"{ours_url}/invocations", content=split_body(rows),
                           headers={"Content-Type": "application/json"}).json()["predictions"]
    if isinstance(theirs[0], float):
        np.testing.assert_allclose(ours, theirs, rtol=VALUE_TOLERANCE, atol=VALUE_TOLERANCE)
        return f"values within {VALUE_TOLERANCE:g} (relative) on {len(rows)} rows"
    assert ours == theirs, "the two servers answer differently"
    return f"identical on {len(rows)} rows"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk)")
    py = sys.executable
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="driftwatch-bench-byom-") as tmp:
        work = Path(tmp)
        home = work / "home"
        base_env = bench_env(home)
        print(f"1 row per request; wrk -t{THREADS} -c{CONNECTIONS} {args.duration}s per run; {os.cpu_count()} CPUs "
              "shared; all servers on 127.0.0.1", flush=True)
        for label, build in (("regressor (GradientBoostingRegressor)", regressor),
                             ("categorical Pipeline (ColumnTransformer + LogisticRegression)", pipeline)):
            model, x, y = build(rng)
            name = "bench-" + label.split()[0]
            settings = RegistrySettings(home=home, model_name=name)
            result = register(model, x, y, x_holdout=x.tail(400), y_holdout=y.tail(400), promote=True,
                              settings=settings, actor="bench")
            tracking = settings.resolved_tracking_uri
            mlflow_port, ours_port = free_port(), free_port()
            mlflow_url, ours_url = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{ours_port}"
            one = x.head(1)
            with server("mlflow models serve",
                        [py, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}/{result.version}",
                         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port)],
                        {**base_env, "MLFLOW_TRACKING_URI": tracking}, f"{mlflow_url}/ping", work / f"{name}-mlflow.log"), \
                 server("serving", [py, "-m", "serving"],
                        {**base_env, "MLFLOW_TRACKING_URI": tracking, "DRIFTWATCH_MODEL_NAME": name,
                         "DRIFTWATCH_SERVING_HOST": "127.0.0.1", "DRIFTWATCH_SERVING_PORT": str(ours_port),
                         "DRIFTWATCH_SERVING_INSTANCE": name},
                        f"{ours_url}/ready", work / f"{name}-serving.log") as ours_pid:
                checked = same_answers(mlflow_url, ours_url, x.sample(200, random_state=1))
                backend = httpx.get(f"{ours_url}/health").json()["inference_backend"]
                d = args.duration
                theirs = wrk(f"{mlflow_url}/invocations", split_body(one), work, duration=d)
                ours_inv = wrk(f"{ours_url}/invocations", split_body(one), work, duration=d, pid=ours_pid)
                features = json.dumps({"features": json.loads(one.to_json(orient="records"))[0]})
                ours_pred = wrk(f"{ours_url}/predict", features, work, duration=d)
            for run in (theirs, ours_inv, ours_pred):
                assert run.non_2xx == 0 and run.errors == 0, run
            print(f"{label}: answers {checked}; inference backend {backend}", flush=True)
            print(f"  /invocations {ours_inv.describe()} vs mlflow models serve {theirs.describe()}: "
                  f"{ours_inv.rps / theirs.rps:.1f}x", flush=True)
            print(f"  /predict {ours_pred.describe()}: {ours_pred.rps / theirs.rps:.1f}x", flush=True)


if __name__ == "__main__":
    main()
