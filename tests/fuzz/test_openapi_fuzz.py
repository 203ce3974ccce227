"""Fuzzing serving, the rollback webhook, the drift exporter and the quality service from their own
OpenAPI schemas (issue #15), with schemathesis: requests generated from each operation's schema
(valid ones, and with ``NEGATIVE`` mode ones that break it), sent over loopback to the real app
under uvicorn with its server limits.

What must hold for every generated request: no 5xx; the status is one the operation documents, with
the documented content type and a body that matches the documented schema; and a request the schema
calls valid is accepted (schemathesis' ``positive_data_acceptance``: no 400/413/415/422 for it), so
the schemas describe real valid bodies, not just their shape.

Bounded: ``EXAMPLES`` per operation and mode, derandomized (the same inputs every run, so a CI
failure reproduces), no example database; the whole module takes well under two minutes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from prometheus_client import CollectorRegistry
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.uvicorn_thread import serve_in_thread
from tests.unit.serving.conftest import ADMIN_TOKEN, FakeRegistry, SavedModel, make_settings
from tests.unit.serving.conftest import saved_models as saved_models

EXAMPLES = 25  # per operation and generation mode
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          positive_data_acceptance]
TOKEN = "fuzz-test-token-0123456789abcdef"
pytestmark = pytest.mark.timeout(180)


def serve(app: Any) -> Iterator[str]:
    with serve_in_thread(app) as port:
        yield f"http://127.0.0.1:{port}"


def fuzz(url: str, *, headers: dict[str, str] | None = None,
         documented_5xx: frozenset[tuple[str, int]] = frozenset()) -> Counter[tuple[str, str, int]]:
    """Every operation of the service's /openapi.json, positive and negative; returns how many answers
    each (operation, mode, status) got. ``documented_5xx`` names the (operation, status) pairs that the
    test's setup makes the right answer (still checked against their documented schema)."""
    document = httpx.get(f"{url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    statuses: Counter[tuple[str, str, int]] = Counter()

    def checker(operation: Any, mode: GenerationMode) -> Callable[[], None]:
        name = f"{operation.method.upper()} {operation.path}"

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            response = case.call(base_url=url, headers=headers, timeout=30)
            statuses[(name, mode.value, response.status_code)] += 1
            expected = (name, response.status_code) in documented_5xx
            case.validate_response(response, checks=[c for c in CHECKS if not (expected and c is not_a_server_error)])

        return check  # type: ignore[no-any-return]

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                checker(operation, mode)()
            except Unsatisfiable:  # an operation without parameters or body has no invalid form
                if mode is GenerationMode.POSITIVE:
                    raise
    return statuses


def answered(statuses: Counter[tuple[str, str, int]], operation: str, mode: str) -> dict[int, int]:
    return {status: n for (op, m, status), n in statuses.items() if op == operation and m == mode}


def test_serving_answers_every_generated_request_without_a_5xx_and_as_documented(
        tmp_path: Path, saved_models: dict[str, SavedModel]) -> None:
    from serving.app import create_app

    registry = FakeRegistry()
    registry.add(saved_models["logreg"], promote=True)
    metrics = CollectorRegistry()
    app = create_app(make_settings(tmp_path), registry=metrics, model_source=registry)
    for url in serve(app):
        statuses = fuzz(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        # Every body the request schemas call valid was scored (JSON, and the CSV the schema describes).
        for operation in ("POST /predict", "POST /invocations"):
            assert answered(statuses, operation, "positive") == {200: EXAMPLES}, statuses
            # Bodies that break the schema are refused (a few mutations are still valid once serialized,
            # and /invocations ignores unknown fields as MLflow does: those are 200).
            refused = answered(statuses, operation, "negative")
            assert set(refused) - {200} <= {400, 413, 415, 422} and sum(refused.values()) - refused.get(200, 0) >= 10, refused
        assert answered(statuses, "POST /admin/reload", "positive") == {200: 1}, statuses
    assert (metrics.get_sample_value("model_prediction_errors_total", {
        "model_name": "iris-classifier", "model_version": "1", "reason": "inference"}) or 0) == 0


def test_the_webhook_answers_every_generated_request_without_a_5xx_and_as_documented(tmp_path: Path) -> None:
    from rollback_webhook.app import create_app
    from rollback_webhook.settings import WebhookSettings
    from tests.unit.rollback_webhook.fakes import RecordingReloader, bad_release

    settings = WebhookSettings(token=TOKEN, store_path=tmp_path / "decisions.db", warm_up=False)
    app = create_app(settings, model_registry=bad_release(), reloader=RecordingReloader())
    for url in serve(app):
        statuses = fuzz(url, headers={"Authorization": f"Bearer {TOKEN}"})
        # Generated Alertmanager payloads reach the decision (200, one result per alert), and broken
        # ones are refused with a 4xx, never a 5xx that Alertmanager would retry forever.
        assert answered(statuses, "POST /alerts", "positive") == {200: EXAMPLES}, statuses
        refused = answered(statuses, "POST /alerts", "negative")  # (a few mutations stay valid once serialized)
        assert set(refused) - {200} <= {400, 422} and sum(refused.values()) - refused.get(200, 0) >= 10, refused
        assert 422 in answered(statuses, "GET /decisions", "negative"), statuses


def test_the_drift_exporter_answers_every_generated_request_without_a_5xx_and_as_documented(tmp_path: Path) -> None:
    from drift_exporter.app import create_app
    from drift_exporter.settings import DriftExporterSettings
    from model_registry import RegistrySettings

    settings = DriftExporterSettings(registry=RegistrySettings(home=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/m.db"),
                                     prediction_log_dir=tmp_path / "predictions")

    class NoProduction:
        def production_version(self, *, with_metrics: bool = True) -> None:
            return None

        def __getattr__(self, name: str) -> Any:
            raise AttributeError(name)

    app = create_app(settings, source=NoProduction(), schedule=False)  # type: ignore[arg-type]
    for url in serve(app):
        # No version in production: /report's documented 503 (the fuzz suite's finding: it was undocumented).
        statuses = fuzz(url, documented_5xx=frozenset({("GET /report", 503)}))
        assert answered(statuses, "GET /drift", "positive") == {200: 1}, statuses
        assert answered(statuses, "GET /report", "positive") == {503: 1}, statuses  # documented: no reference


def test_the_quality_service_answers_every_generated_request_without_a_5xx_and_as_documented(tmp_path: Path) -> None:
    from quality.app import create_app
    from quality.settings import QualitySettings
    from tests.unit.quality.test_quality_app import FakeRegistry as QualityRegistry

    settings = QualitySettings(registry={"home": tmp_path, "model_name": "iris-classifier"},
                               prediction_log_dir=tmp_path / "predictions", token=TOKEN)
    app = create_app(settings, source=QualityRegistry(), schedule=False)
    for url in serve(app):
        statuses = fuzz(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answered(statuses, "GET /quality", "positive") == {200: 1}, statuses
        refused = answered(statuses, "POST /feedback", "negative")  # (a few mutations stay valid once serialized)
        assert set(refused) - {200} <= {400, 413, 415, 422} and sum(refused.values()) - refused.get(200, 0) >= 10, refused
