"""The model store: start-up, following the alias, failed loads, registry outages, the local copy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from prometheus_client import CollectorRegistry

from serving.metrics import ServingMetrics
from serving.model_store import ModelStore
from serving.settings import ServingSettings
from tests.unit.serving.conftest import MODEL_NAME, FakeRegistry, SavedModel, make_settings

T = TypeVar("T")


def run(step: Callable[[ModelStore], Awaitable[T]], store: ModelStore) -> T:
    async def go() -> T:
        try:
            return await step(store)
        finally:
            await store.stop()

    return asyncio.run(go())


def new_store(settings: ServingSettings, registry: FakeRegistry) -> tuple[ModelStore, CollectorRegistry]:
    collector = CollectorRegistry()
    return ModelStore(settings, registry, ServingMetrics(collector, MODEL_NAME)), collector


def reloads(collector: CollectorRegistry, result: str) -> float:
    return collector.get_sample_value("model_reloads_total", {"model_name": MODEL_NAME, "result": result}) or 0.0


def test_start_loads_the_production_version_and_keeps_a_local_copy(settings: ServingSettings,
                                                                   fake_registry: FakeRegistry) -> None:
    store, collector = new_store(settings, fake_registry)
    run(lambda s: s.start(), store)
    assert store.current is not None and store.current.version == "1"
    assert store.current.loaded_from == "registry"
    assert store.current.class_names == ["setosa", "versicolor", "virginica"]
    assert store.current.predictor.backend == "onnx"
    assert store.cache.has("1") and store.cache.last_good() == "1"
    assert reloads(collector, "success") == 1
    assert collector.get_sample_value("model_loaded", {"model_name": MODEL_NAME}) == 1
    assert collector.get_sample_value("model_info", {"model_name": MODEL_NAME, "model_version": "1",
                                                     "alias": "production", "run_id": "run1"}) == 1


def test_a_moved_alias_is_loaded_and_swapped_and_the_old_info_series_goes(settings: ServingSettings,
                                                                          fake_registry: FakeRegistry,
                                                                          saved_models: dict[str, SavedModel]) -> None:
    store, collector = new_store(settings, fake_registry)

    async def steps(s: ModelStore) -> None:
        await s.start()
        first = s.current
        fake_registry.production = fake_registry.add(saved_models["svm"])
        result = await s.reload(force=False)
        assert result.changed and result.previous == "1" and result.version == "2"
        assert first is not None and first.version == "1"  # requests holding the old version keep it intact

    run(steps, store)
    assert store.current is not None and store.current.version == "2"
    assert collector.get_sample_value("model_info", {"model_name": MODEL_NAME, "model_version": "1",
                                                     "alias": "production", "run_id": "run1"}) is None
    assert collector.get_sample_value("model_info", {"model_name": MODEL_NAME, "model_version": "2",
                                                     "alias": "production", "run_id": "run2"}) == 1
    assert reloads(collector, "success") == 2


def test_the_poll_follows_the_alias_without_being_asked(tmp_path: Path, fake_registry: FakeRegistry,
                                                        saved_models: dict[str, SavedModel]) -> None:
    store, _ = new_store(make_settings(tmp_path, poll_interval_seconds=0.05), fake_registry)

    async def steps(s: ModelStore) -> str | None:
        await s.start()
        fake_registry.production = fake_registry.add(saved_models["svm"])
        for _ in range(200):
            await asyncio.sleep(0.05)
            if s.current is not None and s.current.version == "2":
                break
        return s.current.version if s.current else None

    assert run(steps, store) == "2"


def test_a_version_that_fails_to_load_keeps_the_current_one_counted_and_backs_off(
        settings: ServingSettings, fake_registry: FakeRegistry, saved_models: dict[str, SavedModel]) -> None:
    store, collector = new_store(settings, fake_registry)

    async def steps(s: ModelStore) -> None:
        await s.start()
        fake_registry.production = fake_registry.add(saved_models["broken"])
        result = await s.reload(force=False)
        assert not result.changed and result.version == "1" and result.production_version == "2"
        assert result.error is not None and "v2" in result.error
        downloads = fake_registry.calls["download_model"]
        again = await s.reload(force=False)  # within the back-off: not downloaded again
        assert not again.changed and fake_registry.calls["download_model"] == downloads
        forced = await s.reload(force=True)  # an operator asked: tried again
        assert not forced.changed and fake_registry.calls["download_model"] == downloads + 1

    run(steps, store)
    assert store.current is not None and store.current.version == "1"
    assert reloads(collector, "failure") == 2
    assert not store.cache.has("2")


def test_registry_down_at_start_serves_the_last_good_local_copy(tmp_path: Path, fake_registry: FakeRegistry) -> None:
    first, _ = new_store(make_settings(tmp_path), fake_registry)
    run(lambda s: s.start(), first)
    fake_registry.available = False
    store, collector = new_store(make_settings(tmp_path), fake_registry)
    run(lambda s: s.start(), store)
    assert store.current is not None and store.current.version == "1"
    assert store.current.loaded_from == "cache"
    assert store.registry_reachable is False
    assert store.status()["last_error"] is not None and "cannot be reached" in store.status()["last_error"]
    assert collector.get_sample_value("model_registry_poll_errors_total", {"model_name": MODEL_NAME}) == 1


def test_registry_down_during_a_reload_keeps_serving(settings: ServingSettings, fake_registry: FakeRegistry) -> None:
    store, _ = new_store(settings, fake_registry)

    async def steps(s: ModelStore) -> None:
        await s.start()
        fake_registry.available = False
        result = await s.reload(force=True)
        assert result.registry_unavailable and not result.changed and result.version == "1"

    run(steps, store)
    assert store.current is not None and store.current.version == "1"
    assert store.registry_reachable is False


def test_no_registry_and_no_copy_means_no_model_and_a_reason(settings: ServingSettings,
                                                             fake_registry: FakeRegistry) -> None:
    fake_registry.available = False
    store, collector = new_store(settings, fake_registry)
    run(lambda s: s.start(), store)
    assert store.current is None
    assert collector.get_sample_value("model_loaded", {"model_name": MODEL_NAME}) == 0


def test_an_unexpected_error_at_start_falls_back_to_the_local_copy(tmp_path: Path, fake_registry: FakeRegistry) -> None:
    first, _ = new_store(make_settings(tmp_path), fake_registry)
    run(lambda s: s.start(), first)

    def broken(*, with_metrics: bool = True) -> None:
        raise KeyError("something the registry client did not expect")

    fake_registry.production_version = broken  # type: ignore[method-assign,assignment]
    store, _ = new_store(make_settings(tmp_path), fake_registry)
    run(lambda s: s.start(), store)
    assert store.current is not None and store.current.loaded_from == "cache"


def test_no_production_version_is_reported_not_fatal(settings: ServingSettings, fake_registry: FakeRegistry) -> None:
    fake_registry.production = None
    store, _ = new_store(settings, fake_registry)
    run(lambda s: s.start(), store)
    assert store.current is None
    assert "production" in (store.last_error or "")


def test_a_version_without_reference_warms_up_on_its_input_example(settings: ServingSettings,
                                                                   saved_models: dict[str, SavedModel]) -> None:
    registry = FakeRegistry()
    registry.add(saved_models["no-reference"], promote=True)
    store, _ = new_store(settings, registry)
    run(lambda s: s.start(), store)
    assert store.current is not None and store.current.predictor.backend == "onnx"
    assert store.current.class_names == ["0", "1", "2"]  # no reference metadata: the classes themselves


def test_the_cache_keeps_only_the_newest_copies(tmp_path: Path, fake_registry: FakeRegistry,
                                                saved_models: dict[str, SavedModel]) -> None:
    store, _ = new_store(make_settings(tmp_path, model_cache_keep=2), fake_registry)

    async def steps(s: ModelStore) -> None:
        await s.start()
        for _ in range(3):
            fake_registry.production = fake_registry.add(saved_models["logreg"])
            await s.reload(force=False)

    run(steps, store)
    kept = sorted(p.name for p in store.cache.root.iterdir() if p.is_dir())
    assert kept == ["v3", "v4"]
    assert json.loads((store.cache.root / "last-good.json").read_text())["version"] == "4"
