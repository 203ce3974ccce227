"""The production backend against the embedded one: alert → rollback latency and `driftwatch
versions` latency, `mlflow server` on PostgreSQL + S3 (moto) against `mlflow server` on SQLite +
a local artifact folder, in the same run.

Inputs: Iris logistic regression v1 (good) and a second version of the same artifacts (the
"bad" release); one rollback webhook process per backend (decisions in PostgreSQL / in SQLite),
cooldown off. Per round: promote v2 over v1, POST one firing HighErrorRate alert to the webhook,
time until its answer (the answer comes after the registry rollback, the load check of v1 from
the artifact store and the committed decision); then time `driftwatch versions` (a fresh process,
what a person waits for) and `ModelRegistry.list_versions()` in this process. The first round of
each backend warms up and is not counted; the rounds alternate between the backends.

Run: .venv/bin/python benchmarks/bench_backend.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftwatch.backend import LocalBackend, mlflow_server_argv, start_local_backend
from driftwatch.processes import ProcessSpec, Supervisor, free_port
from model_registry import ModelRegistry, RegistrySettings
from model_registry.training import train_and_register

MODEL = "bench-backend"
TOKEN = "bench-backend-token-0123456789abcdef"


@dataclass
class Side:
    name: str
    tracking_uri: str
    webhook_url: str
    registry: ModelRegistry
    good: str
    bad: str
    env: dict[str, str]
    rollback: list[float] = field(default_factory=list)
    versions_cli: list[float] = field(default_factory=list)
    versions_api: list[float] = field(default_factory=list)


def prepare(name: str, tracking_uri: str, root: Path, store_env: dict[str, str], sup: Supervisor) -> Side:
    settings = RegistrySettings(home=root / "trainer", model_name=MODEL, tracking_uri=tracking_uri)
    registry = ModelRegistry(settings)
    good = train_and_register(settings, promote=True, actor="bench")
    assert good.version is not None
    info = registry.get_version(good.version, with_metrics=False)
    model_id = info.source.removeprefix("models:/") if info.source.startswith("models:/m-") else None
    bad = registry.client.create_model_version(MODEL, source=info.source, run_id=info.run_id, model_id=model_id)
    port = free_port()
    token_file = root / "token"
    token_file.write_text(TOKEN)
    env = {"DRIFTWATCH_HOME": str(root / "webhook"), "MLFLOW_TRACKING_URI": tracking_uri,
           "DRIFTWATCH_MODEL_NAME": MODEL, "DRIFTWATCH_WEBHOOK_PORT": str(port),
           "DRIFTWATCH_WEBHOOK_TOKEN_FILE": str(token_file), "DRIFTWATCH_WEBHOOK_COOLDOWN_SECONDS": "0",
           "DRIFTWATCH_WEBHOOK_MAX_ROLLBACKS": "100000", **store_env}
    sup.start(ProcessSpec(f"webhook-{name}", [sys.executable, "-m", "rollback_webhook"], root / "webhook.log",
                          env=env, health_url=f"http://127.0.0.1:{port}/health", health_timeout=180))
    return Side(name, tracking_uri, f"http://127.0.0.1:{port}", registry, good.version, str(bad.version),
                {"MLFLOW_TRACKING_URI": tracking_uri, "DRIFTWATCH_MODEL_NAME": MODEL,
                 "DRIFTWATCH_HOME": str(root / "cli")})


def alert(side: Side, starts_at: datetime) -> dict[str, Any]:
    labels = {"alertname": "HighErrorRate", "model_name": MODEL, "model_version": side.bad, "rollback": "true"}
    return {"version": "4", "status": "firing", "receiver": "rollback-webhook", "groupKey": "{}",
            "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093",
            "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                        "startsAt": starts_at.isoformat().replace("+00:00", "Z"), "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://127.0.0.1:9090", "fingerprint": "00"}]}


def one_round(side: Side, i: int, record: bool) -> None:
    side.registry.promote(side.good, actor="bench", force=True)
    side.registry.promote(side.bad, actor="bench", force=True)
    body = alert(side, datetime.now(UTC) - timedelta(seconds=i + 1))
    t0 = time.perf_counter()
    response = httpx.post(f"{side.webhook_url}/alerts", json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=300)
    elapsed = time.perf_counter() - t0
    decision = response.json()["results"][0]["decision"]
    if decision != "rolled_back":
        raise SystemExit(f"{side.name}: expected a rollback, got {decision}: {response.text}")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "driftwatch", "versions"], env={**os.environ, **side.env},
                          capture_output=True, text=True, timeout=300)
    cli = time.perf_counter() - t0
    if done.returncode != 0 or side.bad not in done.stdout:
        raise SystemExit(f"{side.name}: driftwatch versions failed: {done.stderr[-2000:]}")
    t0 = time.perf_counter()
    side.registry.list_versions()
    api = time.perf_counter() - t0
    if record:
        side.rollback.append(elapsed)
        side.versions_cli.append(cli)
        side.versions_api.append(api)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    sup = Supervisor(say=lambda _: None)
    backend: LocalBackend | None = None
    with tempfile.TemporaryDirectory(prefix="driftwatch-bench-backend-") as tmp:
        root = Path(tmp)
        try:
            print("starting PostgreSQL, the S3 server and two MLflow servers ...", flush=True)
            backend = start_local_backend(logs=root)
            sup.start(backend.mlflow_spec(root / "mlflow-pg.log"))
            backend.warm_up()
            sqlite_port = free_port()
            sup.start(ProcessSpec("mlflow-sqlite", mlflow_server_argv(
                "127.0.0.1", sqlite_port, f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts")),
                root / "mlflow-sqlite.log", health_url=f"http://127.0.0.1:{sqlite_port}/health", health_timeout=240))
            pg_root, sqlite_root = root / "pg", root / "sqlite"
            pg_root.mkdir()
            sqlite_root.mkdir()
            sides = [
                prepare("postgres+s3", backend.tracking_uri, pg_root,
                        backend.webhook_store_env(pg_root / "store-password"), sup),
                prepare("sqlite", f"http://127.0.0.1:{sqlite_port}", sqlite_root,
                        {"DRIFTWATCH_WEBHOOK_STORE": str(sqlite_root / "decisions.db")}, sup),
            ]
            for i in range(args.rounds + 1):
                for side in sides if i % 2 == 0 else list(reversed(sides)):
                    one_round(side, i, record=i > 0)
        finally:
            sup.stop_all()
            if backend is not None:
                backend.stop()
    pg, lite = sides
    print(f"\n{args.rounds} rounds each (medians, seconds); PostgreSQL + S3 / SQLite = ratio")
    for label, attr in (("alert -> rollback (webhook answer)", "rollback"),
                        ("driftwatch versions (CLI process)", "versions_cli"),
                        ("list_versions() (in process)", "versions_api")):
        a, b = statistics.median(getattr(pg, attr)), statistics.median(getattr(lite, attr))
        print(f"  {label:36s} postgres+s3 {a:7.3f}   sqlite {b:7.3f}   ratio {a / b:5.2f}")


if __name__ == "__main__":
    main()
