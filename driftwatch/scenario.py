"""`driftwatch demo`: a release goes bad and is undone, the world drifts, then a release that is
silently wrong is caught by its true labels and undone — end to end, timed.

1. Train and promote a good version; start the stack (demo timing, see monitoring/render.py).
2. Steady traffic; promote a deliberately faulty version (errors=0.5).
3. HighErrorRate fires → Alertmanager → rollback webhook → production back → serving reloads.
4. Traffic whose inputs drift → FeatureDrift fires → Slack (the local sink unless a real URL is set).
5. Inputs back to normal; the traffic generator now sends each prediction's true label 3 s later to
   the quality service. Promote a silently wrong version (flip=0.3: 30% of answers are another
   class, no errors, no extra latency) → ModelQualityDegraded fires → rollback → serving reloads.
It prints a timeline and the time from the bad promotion to the good version serving again, and
exits 0 only if the loop closed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from driftwatch import waiting
from driftwatch.stack import Backend, Stack, StackSettings
from driftwatch.traffic import TrafficGenerator

T = TypeVar("T")
DRIFT_SHIFT = {"petal_length": 1.5, "petal_width": 1.5}
LABEL_DELAY_SECONDS = 3.0
FLIP_SHARE = 0.3


@dataclass
class Timeline:
    start: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, text: str) -> float:
        now = time.monotonic()
        self.events.append((now - self.start, text))
        print(f"[{now - self.start:7.1f}s] {text}", flush=True)
        return now

    def render(self) -> str:
        return "\n".join(f"  {t:7.1f}s  {text}" for t, text in self.events)


class DemoFailed(RuntimeError):
    pass


def wait_for(what: str, check: Callable[[], T | None], *, timeout: float, interval: float = 0.5) -> T:
    try:
        return waiting.wait_for(what, check, timeout=timeout, interval=interval)
    except waiting.WaitTimeout as exc:
        raise DemoFailed(str(exc)) from None


def serving_version(stack: Stack, url: str | None = None) -> str | None:
    """The version serving answers with (through the balancer, or from one replica's ``url``)."""
    response = httpx.get(f"{url or stack.urls.serving}/health", timeout=2)
    if not response.is_success:
        return None
    body: dict[str, Any] = response.json()
    version = body.get("model_version") or body.get("version")
    if isinstance(body.get("model"), dict):
        version = version or body["model"].get("version")
    return None if version is None else str(version)


def firing_alerts(stack: Stack, name: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.urls.prometheus}/api/v1/alerts", timeout=2)
    alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
    return [a for a in alerts if a["labels"].get("alertname") == name and a["state"] == "firing"]


def prometheus_has(stack: Stack, query: str) -> bool:
    response = httpx.get(f"{stack.urls.prometheus}/api/v1/query", params={"query": query}, timeout=2)
    return bool(response.json()["data"]["result"])


def webhook_decisions(stack: Stack) -> list[dict[str, Any]]:
    token = stack.webhook_token_file.read_text().strip()
    response = httpx.get(f"{stack.urls.webhook}/decisions", timeout=2,
                         headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    body = response.json()
    decisions: list[dict[str, Any]] = body.get("decisions", body) if isinstance(body, dict) else body
    return decisions


def slack_texts(stack: Stack) -> list[str]:
    from driftwatch.slack_sink import read_messages

    return [str(m["message"]) for m in read_messages(stack.slack_messages_file)]


@dataclass
class ScenarioResult:
    timeline: Timeline
    checks: dict[str, bool]
    recovery_seconds: float | None
    good_version: str | None = None
    bad_version: str | None = None
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values()) and self.failure is None

    def report(self) -> str:
        lines = ["Timeline:", self.timeline.render()]
        if self.recovery_seconds is not None:
            lines.append(f"\nTime to recover (bad promotion -> good version serving): {self.recovery_seconds:.1f} s")
        lines.append("\nChecks:")
        lines += [f"  [{'ok' if ok else 'FAILED'}] {name}" for name, ok in self.checks.items()]
        return "\n".join(lines)


def alertmanager_has(stack: Stack, name: str) -> bool:
    response = httpx.get(f"{stack.urls.alertmanager}/api/v2/alerts",
                         params={"filter": f'alertname="{name}"'}, timeout=2)
    return bool(response.json())


def quality_of(stack: Stack, version: str) -> dict[str, Any] | None:
    response = httpx.get(f"{stack.urls.quality}/quality", timeout=2)
    for entry in response.json().get("versions", []):
        if entry.get("version") == version:
            found: dict[str, Any] = entry
            return found
    return None


def run_scenario(stack: Stack, *, drift: bool = True, quality: bool = True,
                 on_stack_up: Callable[[Stack], None] | None = None) -> ScenarioResult:
    """Run the scenario on a stack that is not started yet; the caller stops it."""
    from model_registry.client import ModelRegistry
    from model_registry.data import load_iris_dataset
    from model_registry.faults import FaultSpec
    from model_registry.reference import read_reference
    from model_registry.settings import RegistrySettings
    from model_registry.training import train_and_register

    timeline = Timeline()
    result = ScenarioResult(timeline=timeline, checks={}, recovery_seconds=None)
    checks = result.checks
    traffic: TrafficGenerator | None = None
    stack.start_backend()
    if stack.local_backend is not None:
        timeline.mark("registry backend up: mlflow server on PostgreSQL, artifacts in "
                      f"{stack.local_backend.artifacts_destination}")
    registry_settings = RegistrySettings(home=stack.home, model_name=stack.settings.model_name,
                                         tracking_uri=stack.tracking_uri)
    registry = ModelRegistry(registry_settings)
    try:
        good = train_and_register(registry_settings, promote=True, actor="demo")
        result.good_version = good.version
        timeline.mark(f"trained and promoted v{good.version} (test_accuracy {good.metrics['test_accuracy']:.3f})")
        stack.start()
        timeline.mark("stack up")
        reference = read_reference(registry.download_reference(good.version or "", stack.home / "demo-reference"))
        # The demo knows the world's truth: Iris rows and their species, sent as labels in act 3.
        iris = load_iris_dataset()
        traffic = TrafficGenerator(stack.urls.serving, iris.features[reference.feature_names], rate=20.0,
                                   truth=iris.target)
        traffic.start()
        timeline.mark("steady traffic: 20 requests/s of training-like rows")
        wait_for("Prometheus to scrape predictions",
                 lambda: prometheus_has(stack, f'model_predictions_total{{model_version="{good.version}"}}'),
                 timeout=60)
        time.sleep(10)  # let the rate windows fill with healthy traffic
        timeline.mark("Prometheus sees healthy traffic")

        bad = train_and_register(registry_settings, model="logreg", fault=FaultSpec(error_rate=0.5), register=True,
                                 actor="demo")
        result.bad_version = bad.version
        registry.promote(bad.version or "", actor="demo", reason="demo: a release that goes bad")
        t_bad = timeline.mark(f"promoted v{bad.version}, a faulty release (half its predictions fail)")
        wait_for(f"serving to pick up v{bad.version}", lambda: serving_version(stack) == bad.version, timeout=30,
                 interval=0.2)
        timeline.mark(f"serving v{bad.version}; errors start")
        wait_for("HighErrorRate to fire", lambda: firing_alerts(stack, "HighErrorRate"), timeout=120)
        timeline.mark("HighErrorRate firing in Prometheus")
        checks["Alertmanager saw HighErrorRate"] = bool(
            wait_for("Alertmanager to receive HighErrorRate", lambda: alertmanager_has(stack, "HighErrorRate"),
                     timeout=30))
        # Serving loads the good version again before it swaps: minutes on a machine as loaded as CI's can be.
        wait_for(f"serving back on v{good.version}", lambda: serving_version(stack) == good.version, timeout=300,
                 interval=0.2)
        t_back = timeline.mark(f"rolled back by the webhook: serving v{good.version} again")
        result.recovery_seconds = t_back - t_bad
        production = registry.production_version(with_metrics=False)
        bad_info = registry.get_version(bad.version or "", with_metrics=False)
        checks["production is the good version again"] = (production is not None
                                                           and production.version == good.version)
        checks["the bad version is quarantined"] = bad_info.quarantined
        timeline.mark(f"v{bad.version} quarantined: {bad_info.quarantine_reason}")
        if on_stack_up is not None:
            on_stack_up(stack)

        if drift:
            traffic.set_shift(DRIFT_SHIFT)
            timeline.mark("inputs drift: petal_length and petal_width shifted by 1.5 standard deviations")
            wait_for("FeatureDrift to fire", lambda: firing_alerts(stack, "FeatureDrift"), timeout=150)
            timeline.mark("FeatureDrift firing")
            if stack.urls.slack_sink:
                wait_for("the FeatureDrift Slack message",
                         lambda: any("FeatureDrift" in text for text in slack_texts(stack)), timeout=60)
                timeline.mark("FeatureDrift reached Slack (local sink)")
        if quality:
            _quality_act(stack, registry, registry_settings, traffic, result)
        if stack.urls.slack_sink:
            texts = slack_texts(stack)
            checks["HighErrorRate reached Slack"] = any("HighErrorRate" in t for t in texts)
            if drift:
                checks["FeatureDrift reached Slack"] = any("FeatureDrift" in t for t in texts)
            if quality:
                checks["ModelQualityDegraded reached Slack"] = any("ModelQualityDegraded" in t for t in texts)
        rolled = [d for d in webhook_decisions(stack) if d.get("decision") == "rolled_back"]
        expected = 2 if quality else 1
        checks[f"exactly {'two rollbacks' if quality else 'one rollback'}"] = len(rolled) == expected
    except DemoFailed as exc:
        result.failure = str(exc)
        timeline.mark(f"FAILED: {exc}")
    finally:
        if traffic is not None:
            traffic.stop()
    return result


def _quality_act(stack: Stack, registry: Any, registry_settings: Any, traffic: TrafficGenerator,
                 result: ScenarioResult) -> None:
    """Act 3: true labels arrive after a delay; a silently wrong release is caught by them."""
    from model_registry.faults import FaultSpec
    from model_registry.training import train_and_register

    timeline, checks, good = result.timeline, result.checks, result.good_version or ""
    traffic.set_shift({})
    traffic.send_labels(stack.urls.quality, delay=LABEL_DELAY_SECONDS,
                        token=stack.quality_token_file.read_text().strip())
    timeline.mark(f"inputs back to normal; each prediction's true label now reaches the quality service "
                  f"{LABEL_DELAY_SECONDS:.0f} s later")
    live = wait_for(f"live quality of v{good} from 200 labels",
                    lambda: (q := quality_of(stack, good)) and q["window_labeled"] >= 200 and q, timeout=90)
    timeline.mark(f"v{good} live accuracy {live['accuracy']:.3f} on {live['window_labeled']} labels "
                  f"(reference {live['reference'].get('accuracy', float('nan')):.3f})")
    wrong = train_and_register(registry_settings, model="logreg", fault=FaultSpec(flip_rate=FLIP_SHARE),
                               register=True, actor="demo")
    registry.promote(wrong.version or "", actor="demo", reason="demo: a release that is silently wrong")
    t_wrong = timeline.mark(f"promoted v{wrong.version}, silently wrong ({FLIP_SHARE:.0%} of answers another class; "
                            "no errors, same latency, same inputs)")
    wait_for(f"serving to pick up v{wrong.version}", lambda: serving_version(stack) == wrong.version, timeout=30,
             interval=0.2)
    timeline.mark(f"serving v{wrong.version}")
    wait_for("ModelQualityDegraded to fire", lambda: firing_alerts(stack, "ModelQualityDegraded"), timeout=150)
    timeline.mark("ModelQualityDegraded firing in Prometheus")
    wait_for(f"serving back on v{good}", lambda: serving_version(stack) == good, timeout=120, interval=0.2)
    t_back = timeline.mark(f"rolled back by the webhook: serving v{good} again")
    checks["the silently wrong version was caught by its labels and rolled back"] = True
    production = registry.production_version(with_metrics=False)
    checks["production is the good version after the quality rollback"] = (
        production is not None and production.version == good)
    checks["the silently wrong version is quarantined"] = registry.get_version(
        wrong.version or "", with_metrics=False).quarantined
    checks["ModelQualityDegraded never fired on the good version"] = not prometheus_has(
        stack, f'count_over_time(ALERTS{{alertname="ModelQualityDegraded",model_version="{good}"}}[30m])')
    timeline.mark(f"time to catch a silently wrong release by its labels: {t_back - t_wrong:.1f} s")
    # The drift exporter's window switched versions twice: let it judge v{good} again (a full window
    # of its predictions) before the traffic stops, so every drift panel has something to show.
    wait_for(f"drift checks of v{good} again",
             lambda: prometheus_has(stack, f'model_prediction_drift_score{{model_version="{good}"}}'), timeout=90)
    timeline.mark(f"drift exporter judging v{good} again")


def demo_stack(backend: Backend | None = None) -> Stack:
    """A stack in ``$DRIFTWATCH_HOME/demo`` (wiped first) with demo timing."""
    base = StackSettings()
    home = base.home.expanduser().resolve() / "demo"
    if home.exists():
        shutil.rmtree(home)
    return Stack(base.model_copy(update={"home": home}), timing="demo", backend=backend)


def run_demo(*, keep_running: bool = False, backend: Backend | None = None) -> int:
    stack = demo_stack(backend)
    try:
        result = run_scenario(stack)
    finally:
        if keep_running:
            print("stack left running; `driftwatch down` stops it\n" + stack.describe())
        else:
            stack.stop()
    print("\n" + result.report())
    if result.ok:
        print("\nThe loop closed.")
        return 0
    print(f"\nThe loop did NOT close; the services' logs are in {stack.logs}")
    return 1
