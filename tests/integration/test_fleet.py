"""`driftwatch up --replicas 3` with the real nginx and Prometheus: traffic through the balancer, a bad
release rolled back on every replica, the drift window fed by every replica, and one replica killed
without clients noticing while InstanceDown names that one only."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from driftwatch.balancer import nginx_binary
from driftwatch.scenario import DemoFailed, firing_alerts, prometheus_has, serving_version, wait_for
from driftwatch.stack import Stack, StackSettings
from driftwatch.traffic import TrafficGenerator
from tests.support.procs import IN_CI, free_port, require_binary

pytestmark = pytest.mark.integration

REPLICAS = 3
# Loading a version (download from the registry, ONNX compile check, warm-up) on this 2-core machine
# shared with the rest of the stack; added to the poll interval to bound the switch of every replica.
RELOAD_SECONDS = 15.0


def test_three_replicas_behind_nginx_roll_back_together_feed_drift_and_survive_one_loss(tmp_path: Path) -> None:
    for name in ("prometheus", "prometheus-alertmanager"):
        require_binary(name)
    try:
        nginx_binary()
    except FileNotFoundError:
        if IN_CI:
            raise
        pytest.skip("nginx is not installed (make system-deps)")

    from model_registry.client import ModelRegistry
    from model_registry.faults import FaultSpec
    from model_registry.reference import read_reference
    from model_registry.settings import RegistrySettings
    from model_registry.training import train_and_register

    replica_ports = [free_port() for _ in range(REPLICAS)]
    settings = StackSettings(
        home=tmp_path / "home", serving_port=free_port(), drift_exporter_port=free_port(),
        webhook_port=free_port(), prometheus_port=free_port(), alertmanager_port=free_port(),
        slack_sink_port=free_port(), serving_replicas=REPLICAS,
        serving_replica_ports=",".join(map(str, replica_ports)),
    )
    stack = Stack(settings, timing="demo", say=lambda _: None)
    registry_settings = RegistrySettings(home=stack.home, model_name=settings.model_name,
                                         tracking_uri=stack.tracking_uri)
    registry = ModelRegistry(registry_settings)
    replicas = stack.urls.serving_replicas
    traffic: TrafficGenerator | None = None
    try:
        good = train_and_register(registry_settings, promote=True, actor="test")
        stack.start()
        reference = read_reference(registry.download_reference(good.version or "", stack.home / "reference"))
        traffic = TrafficGenerator(stack.urls.serving, reference.features, rate=20.0)
        traffic.start()

        # Prometheus found every replica through the file `up` wrote, and each one answers traffic.
        for port in replica_ports:
            wait_for(f"predictions scraped from replica :{port}", lambda port=port: prometheus_has(  # type: ignore[misc]
                stack, f'model_predictions_total{{job="serving",instance="127.0.0.1:{port}"}} > 0'), timeout=60)

        # A bad release reaches every replica, HighErrorRate fires on the sum over them, the webhook
        # rolls back and reloads each replica directly.
        bad = train_and_register(registry_settings, fault=FaultSpec(error_rate=0.5), register=True, actor="test")
        registry.promote(bad.version or "", actor="test", reason="test: a release that goes bad")
        wait_for("every replica on the bad version",
                 lambda: all(serving_version(stack, url) == bad.version for url in replicas), timeout=60)
        wait_for("HighErrorRate", lambda: firing_alerts(stack, "HighErrorRate"), timeout=120)
        rolled_back_at = None
        all_good_at = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and all_good_at is None:
            if rolled_back_at is None:
                production = registry.production_version(with_metrics=False)
                if production is not None and production.version == good.version:
                    rolled_back_at = time.monotonic()
            if rolled_back_at is not None and all(serving_version(stack, url) == good.version for url in replicas):
                all_good_at = time.monotonic()
            time.sleep(0.1)
        assert rolled_back_at is not None, "the webhook did not roll back"
        assert all_good_at is not None, "not every replica came back to the good version"
        switch = all_good_at - rolled_back_at
        assert switch <= stack.poll_interval + RELOAD_SECONDS, f"replicas took {switch:.1f}s to switch back"
        token = stack.webhook_token_file.read_text().strip()

        def rollback_with_reloads() -> list[dict[str, object]] | None:
            body = httpx.get(f"{stack.urls.webhook}/decisions", headers={"Authorization": f"Bearer {token}"},
                             timeout=5).json()
            decisions = body.get("decisions", body) if isinstance(body, dict) else body
            rolled = [d for d in decisions if d.get("decision") == "rolled_back"]
            return rolled if rolled and rolled[0].get("reloads") else None

        rolled = wait_for("the webhook to record its reloads", rollback_with_reloads, timeout=30)
        assert len(rolled) == 1
        # the webhook called each replica directly, not the balancer
        assert sorted(r["url"] for r in rolled[0]["reloads"]) == sorted(replicas)  # type: ignore[union-attr]

        # The drift window holds rows from every replica.
        def window_instances() -> dict[str, int] | None:
            body = httpx.get(f"{stack.urls.drift_exporter}/drift", timeout=5).json()
            instances: dict[str, int] = body["run"]["window"]["instances"]
            return instances if len(instances) == REPLICAS else None

        instances = wait_for("the drift window to hold rows of every replica", window_instances, timeout=60)
        assert set(instances) == {f"serving-{i}" for i in range(1, REPLICAS + 1)}
        assert all(rows > 0 for rows in instances.values())

        # Kill replica 2: clients keep getting answers through the balancer; InstanceDown names it only.
        killed = f"127.0.0.1:{replica_ports[1]}"
        before = traffic.stats.status.copy(), traffic.stats.transport_errors, traffic.stats.sent
        os.killpg(stack.supervisor.procs["serving-2"].pid, signal.SIGKILL)
        firing = wait_for("InstanceDown for the killed replica",
                          lambda: firing_alerts(stack, "InstanceDown"), timeout=60)
        time.sleep(3 * stack.poll_interval)  # give a wrong InstanceDown time to show up too
        firing = firing_alerts(stack, "InstanceDown")
        assert {(a["labels"]["job"], a["labels"]["instance"]) for a in firing} == {("serving", killed)}
        after = traffic.stats.status - before[0]
        assert traffic.stats.sent - before[2] >= 20, "traffic stopped flowing"
        assert traffic.stats.transport_errors == before[1]
        # The request replica 2 was answering when it died may get a 502 (nginx does not send a POST
        # twice); every other one is answered by the other replicas.
        assert after[200] >= 20 and set(after) <= {200, 502} and after[502] <= 1, f"answers after the kill: {after}"
    except DemoFailed as exc:
        pytest.fail(f"{exc}; logs in {stack.logs}")
    finally:
        if traffic is not None:
            traffic.stop()
        stack.stop()
