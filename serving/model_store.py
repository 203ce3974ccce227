"""Which version is served: load at start, follow the production alias, swap atomically.

Why this module: it holds the one piece of state (the served version) and the policy around it.
Loading (``serving.model_loader``) runs in a worker thread; the swap is one assignment on the event
loop, so a request sees either the old version or the new one, never a half-loaded one, and
requests already running finish on the version they started with. A failed load keeps the current
version and is counted (``model_reloads_total{result="failure"}``); a version that failed is
retried with back-off rather than downloaded again at every poll. Every version that loads is kept
in the model cache (``serving.model_cache``); when the registry cannot be reached at start-up, the
service serves the last good copy and says so in /health and /metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from driftwatch.clock import iso_utc
from driftwatch.redact import redact
from model_registry import RegistryError, RegistryUnavailable
from serving.metrics import ServingMetrics
from serving.model_cache import ModelCache, ModelSource
from serving.model_loader import LoadedModel, load_version
from serving.settings import ServingSettings

__all__ = ["LoadedModel", "ModelSource", "ModelStore", "ReloadResult"]

logger = logging.getLogger(__name__)

MAX_RETRY_SECONDS = 300.0


@dataclass(frozen=True)
class ReloadResult:
    changed: bool
    version: str | None  # serving after the attempt
    previous: str | None
    production_version: str | None  # what the registry marks as production (None: unknown)
    error: str | None = None
    registry_unavailable: bool = False


class ModelStore:
    """Holds the served version; loads, polls and swaps."""

    def __init__(self, settings: ServingSettings, source: ModelSource, metrics: ServingMetrics | None) -> None:
        self.settings = settings
        self.source = source
        self.metrics = metrics
        self.cache = ModelCache(settings.resolved_model_cache_dir, settings.registry.model_name,
                                keep=settings.model_cache_keep)
        self.current: LoadedModel | None = None
        self.registry_reachable: bool | None = None
        self.production_version: str | None = None
        self.last_check_at: float | None = None
        self.last_error: str | None = None
        self._failed: dict[str, tuple[int, float]] = {}  # version -> (failures, next attempt at)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the production version (or the last good local copy) and start polling."""
        try:
            why = (await self.reload(force=True)).error
        except Exception as exc:  # boundary: start-up goes on to the local copy, and the poll keeps trying
            logger.exception("model store: the first registry check failed")
            why = f"{type(exc).__name__}: {exc}"
        if self.current is None:
            await self._load_last_good(why)
        self._task = asyncio.create_task(self._poll(), name="model-store-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_seconds)
            try:
                await self.reload(force=False)
            except Exception:  # boundary of the poll task: log, keep polling
                logger.exception("model store: poll failed")

    # ------------------------------------------------------------------ reload
    async def reload(self, *, force: bool) -> ReloadResult:
        """Ask the registry which version is production and swap to it if it changed. ``force``
        ignores the back-off of a version that failed (an operator asked)."""
        async with self._lock:
            previous = self.current
            result, loaded = await asyncio.to_thread(self._check, previous, force)
            if loaded is not None:
                self._swap(loaded)
            return result

    def _check(self, current: LoadedModel | None, force: bool) -> tuple[ReloadResult, LoadedModel | None]:
        serving = current.version if current else None
        self.last_check_at = time.time()
        try:
            info = self.source.production_version(with_metrics=False)
        except RegistryError as exc:
            unavailable = isinstance(exc, RegistryUnavailable)
            error = f"registry check failed: {exc}"
            # Once per outage at WARNING (the poll would repeat it every few seconds); the counter counts all.
            repeated = error == self.last_error
            self.registry_reachable = not unavailable
            self.last_error = error
            if self.metrics is not None:
                self.metrics.poll_errors.inc()
            logger.log(logging.DEBUG if repeated else logging.WARNING, "model store: %s; still serving %s", error,
                       f"v{serving}" if serving else "nothing")
            return ReloadResult(False, serving, serving, self.production_version, self.last_error, unavailable), None
        if self.registry_reachable is False:
            logger.info("model store: the registry answers again")
        self.registry_reachable = True
        if info is None:
            self.production_version = None
            self.last_error = (f"no version of {self.settings.registry.model_name!r} is marked "
                               f"{self.settings.production_label!r} in the registry")
            return ReloadResult(False, serving, serving, None, self.last_error), None
        self.production_version = info.version
        if current is not None and current.version == info.version:
            self.last_error = None
            return ReloadResult(False, serving, serving, info.version), None
        failures, retry_at = self._failed.get(info.version, (0, 0.0))
        if not force and time.time() < retry_at:
            return ReloadResult(False, serving, serving, info.version, self.last_error), None
        try:
            folder = self.cache.fetch(self.source, info)
            loaded = load_version(folder, info, self.settings, loaded_from="registry")
        except Exception as exc:  # boundary: any failure to load keeps the current version, counted
            unavailable = isinstance(exc, RegistryUnavailable)
            if unavailable:
                self.registry_reachable = False
            self.cache.discard(info.version)  # the next attempt downloads it afresh
            delay = min(self.settings.poll_interval_seconds * 2 ** failures, MAX_RETRY_SECONDS)
            self._failed[info.version] = (failures + 1, time.time() + delay)
            self.last_error = f"loading v{info.version} failed: {type(exc).__name__}: {exc}"
            if self.metrics is not None:
                self.metrics.reload_failure.inc()
            logger.error("model store: %s; still serving %s; next attempt in %.0f s", self.last_error,
                         f"v{serving}" if serving else "nothing", delay,
                         extra={"model_version": info.version, "event": "reload_failed"})
            return ReloadResult(False, serving, serving, info.version, self.last_error, unavailable), None
        self._failed.pop(info.version, None)
        self.last_error = None
        return ReloadResult(True, info.version, serving, info.version), loaded

    async def _load_last_good(self, why: str | None) -> None:
        version = self.cache.last_good()
        if version is None:
            logger.error("model store: no model to serve (%s) and no local copy in %s; answering 503 until "
                         "the registry has a production version", why, self.cache.root)
            return
        try:
            loaded = await asyncio.to_thread(
                load_version, self.cache.version_dir(version), self.cache.info(version), self.settings,
                loaded_from="cache")
        except Exception as exc:  # boundary: a broken local copy is reported, not fatal
            if self.metrics is not None:
                self.metrics.reload_failure.inc()
            logger.error("model store: the local copy of v%s does not load (%s: %s)", version,
                         type(exc).__name__, exc)
            return
        logger.warning("model store: serving the local copy of v%s (%s)", version, why)
        self._swap(loaded)

    def _swap(self, loaded: LoadedModel) -> None:
        if self.metrics is not None:
            loaded.series = self.metrics.series(loaded.version, loaded.class_names, task=loaded.task,
                                                value_buckets=loaded.value_buckets)
            self.metrics.model_swapped(version=loaded.version, alias=loaded.alias, run_id=loaded.run_id)
            self.metrics.reload_success.inc()
        previous = self.current
        self.current = loaded  # the swap: one assignment on the event loop
        logger.info("model store: serving v%s (from %s, %s)%s", loaded.version, loaded.loaded_from,
                    loaded.predictor.backend, f", replacing v{previous.version}" if previous else "",
                    extra={"model_version": loaded.version, "event": "model_swapped"})
        try:
            if loaded.loaded_from == "registry":
                self.cache.mark_good(loaded.version)
            self.cache.prune({loaded.version} | ({previous.version} if previous else set()))
        except OSError as exc:
            logger.warning("model store: could not update the model cache: %s", exc)

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        return {
            "registry_reachable": self.registry_reachable,
            "production_version": self.production_version,
            "last_check_at": iso_utc(self.last_check_at, timespec="seconds") if self.last_check_at else None,
            "last_error": redact(self.last_error) if self.last_error else None,
        }
