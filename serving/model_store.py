"""Which version is served: load at start, follow the production alias, swap atomically, keep a copy.

Loading (download, load, compile, warm up) runs in a worker thread; the swap is one assignment on
the event loop, so a request sees either the old version or the new one, never a half-loaded one,
and requests already running finish on the version they started with. A failed load keeps the
current version and is counted (``model_reloads_total{result="failure"}``); a version that failed
is retried with back-off rather than downloaded again at every poll.

Every version that loads is kept under the model cache (``<cache>/<model>/v<N>/``, written to a
temporary folder and renamed, so a half-written copy is never used) with ``last-good.json``
pointing at the newest good one: when the registry cannot be reached at start-up, the service
serves that copy and says so in /health and /metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd

from driftwatch.clock import iso_utc
from driftwatch.redact import redact
from model_registry import RegistryError, RegistryUnavailable, VersionInfo
from serving.metrics import ModelSeries, ServingMetrics
from serving.prediction_log import LogModel
from serving.predictor import Fault, LoadedPredictor, Predictor, load_predictor
from serving.schema import ModelSchema, features_from_signature
from serving.settings import ServingSettings

logger = logging.getLogger(__name__)

LoadedFrom = Literal["registry", "cache"]
COMPLETE_MARKER = "version.json"
LAST_GOOD = "last-good.json"
WARMUP_ROWS = 1000
MAX_RETRY_SECONDS = 300.0


class ModelSource(Protocol):
    """What the store needs from the registry (``model_registry.ModelRegistry`` is one)."""

    def production_version(self, *, with_metrics: bool = True) -> VersionInfo | None: ...

    def download_model(self, version: str, dst: Path) -> Path: ...

    def download_reference(self, version: str, dst: Path) -> Path: ...


@dataclass
class LoadedModel:
    """One version, ready to answer."""

    name: str
    version: str
    run_id: str | None
    artifact_source: str
    alias: str
    uri: str
    schema: ModelSchema
    predictor: Predictor
    fault: Fault
    class_names: list[str]
    class_ids: list[Any]
    class_index: dict[Any, int]
    loaded_from: LoadedFrom
    loaded_at: float
    created_at: str | None
    tags: dict[str, str]
    check: str
    path: Path
    log_model: LogModel  # what every prediction log line of this version shares
    series: ModelSeries | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "run_id": self.run_id, "uri": self.uri,
            "artifact_source": self.artifact_source, "alias": self.alias, "loaded_from": self.loaded_from,
            "loaded_at": iso_utc(self.loaded_at, timespec="seconds"), "created_at": self.created_at,
            "inference_backend": self.predictor.backend, "inference_check": self.check,
            "fault": self.fault.describe(), "features": [{"name": f.name, "type": f.kind, "required": f.required}
                                                         for f in self.schema.features],
            "classes": self.class_names,
        }


@dataclass(frozen=True)
class ReloadResult:
    changed: bool
    version: str | None  # serving after the attempt
    previous: str | None
    production_version: str | None  # what the registry marks as production (None: unknown)
    error: str | None = None
    registry_unavailable: bool = False




def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "model"


# ---------------------------------------------------------------------- local copies
class ModelCache:
    """Local copies of versions: ``<root>/<model>/v<N>/{model,reference,version.json}``."""

    def __init__(self, root: Path, model_name: str, *, keep: int = 3) -> None:
        self.root = root / _safe_name(model_name)
        self.keep = keep

    def version_dir(self, version: str) -> Path:
        return self.root / f"v{version}"

    def has(self, version: str) -> bool:
        return (self.version_dir(version) / COMPLETE_MARKER).is_file()

    def fetch(self, source: ModelSource, info: VersionInfo) -> Path:
        """The local copy of ``info``'s version, downloading it when missing (versions are immutable)."""
        final = self.version_dir(info.version)
        if self.has(info.version):
            return final
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-v{info.version}-", dir=self.root))
        try:
            model = source.download_model(info.version, tmp / "download-model")
            shutil.move(str(model), str(tmp / "model"))
            try:
                reference = source.download_reference(info.version, tmp / "download-reference")
                shutil.move(str(reference), str(tmp / "reference"))
            except RegistryUnavailable:
                raise
            except (RegistryError, OSError) as exc:
                logger.warning("v%s has no reference data (%s); warming up on its input example", info.version, exc)
            for leftover in ("download-model", "download-reference"):
                shutil.rmtree(tmp / leftover, ignore_errors=True)
            (tmp / COMPLETE_MARKER).write_text(json.dumps(_info_to_json(info), indent=2))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def discard(self, version: str) -> None:
        """Forget a copy that did not load (unless it is the last good one)."""
        if version != self.last_good():
            shutil.rmtree(self.version_dir(version), ignore_errors=True)

    def info(self, version: str) -> VersionInfo:
        return _info_from_json(json.loads((self.version_dir(version) / COMPLETE_MARKER).read_text()))

    def mark_good(self, version: str) -> None:
        target = self.root / LAST_GOOD
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": version, "at": iso_utc(time.time(), timespec="seconds")}))
        os.replace(tmp, target)

    def last_good(self) -> str | None:
        try:
            version = str(json.loads((self.root / LAST_GOOD).read_text())["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return version if self.has(version) else None

    def prune(self, protect: set[str]) -> None:
        """Keep the newest ``keep`` copies (and the protected ones); remove the rest and stale temp folders."""
        if not self.root.is_dir():
            return
        versions = sorted((p for p in self.root.glob("v*") if p.name[1:].isdigit()),
                          key=lambda p: int(p.name[1:]), reverse=True)
        for old in versions[self.keep:]:
            if old.name[1:] not in protect:
                shutil.rmtree(old, ignore_errors=True)
        for tmp in self.root.glob(".tmp-v*"):
            if time.time() - tmp.stat().st_mtime > 3600:
                shutil.rmtree(tmp, ignore_errors=True)


def _info_to_json(info: VersionInfo) -> dict[str, Any]:
    return {"name": info.name, "version": info.version, "run_id": info.run_id, "source": info.source,
            "created_at": info.created_at.isoformat(), "aliases": list(info.aliases), "stage": info.stage,
            "tags": dict(info.tags)}


def _info_from_json(data: dict[str, Any]) -> VersionInfo:
    return VersionInfo(name=data["name"], version=str(data["version"]), run_id=data.get("run_id"),
                       source=data.get("source", ""), created_at=datetime.fromisoformat(data["created_at"]),
                       aliases=tuple(data.get("aliases", ())), stage=data.get("stage", "None"),
                       tags=dict(data.get("tags", {})))


# ---------------------------------------------------------------------- loading one version
def load_version(folder: Path, info: VersionInfo, settings: ServingSettings, *, loaded_from: LoadedFrom) -> LoadedModel:
    """Load a cached version folder: schema from the signature, predictor, warm-up, class names."""
    import mlflow

    model_dir = folder / "model"
    signature = mlflow.models.Model.load(str(model_dir / "MLmodel")).signature
    schema = ModelSchema(features_from_signature(signature), model_name=info.name)
    warmup, reference_classes = _warmup_rows(folder, model_dir, schema)
    loaded: LoadedPredictor = load_predictor(model_dir, schema, warmup, backend=settings.inference_backend)
    classes = loaded.classes
    if classes is None:
        classes = list(range(len(reference_classes))) if reference_classes else []
    if reference_classes and len(reference_classes) == len(classes):
        names = [str(n) for n in reference_classes]
    else:
        names = [str(c) for c in classes]
    class_ids: list[Any] = [c if isinstance(c, int) else i for i, c in enumerate(classes)]
    return LoadedModel(
        name=info.name, version=info.version, run_id=info.run_id, artifact_source=info.source,
        alias=settings.production_label, uri=settings.production_uri, schema=schema,
        predictor=loaded.predictor, fault=loaded.fault, class_names=names, class_ids=class_ids,
        class_index={c: i for i, c in enumerate(classes)}, loaded_from=loaded_from, loaded_at=time.time(),
        created_at=info.created_at.isoformat(), tags=dict(info.tags), check=loaded.check, path=folder,
        log_model=LogModel(model={"name": info.name, "version": info.version, "source": settings.production_uri},
                           names=schema.names, kinds=tuple(f.kind for f in schema.features), class_ids=class_ids,
                           class_names=names),
    )


def _warmup_rows(folder: Path, model_dir: Path, schema: ModelSchema) -> tuple[list[list[Any]], list[str] | None]:
    """Rows of the reference sample (or the model's input example) in signature order, and class names."""
    reference = folder / "reference"
    class_names: list[str] | None = None
    frame: pd.DataFrame | None = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        metadata = json.loads((reference / "metadata.json").read_text())
        class_names = [str(n) for n in metadata.get("class_names", [])] or None
    with contextlib.suppress(OSError, ValueError, KeyError):
        frame = pd.read_csv(reference / "features.csv").head(WARMUP_ROWS)
    if frame is None or not set(schema.names) <= set(frame.columns):
        frame = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            example = json.loads((model_dir / "input_example.json").read_text())
            frame = pd.DataFrame(example["data"], columns=example["columns"])
    if frame is None or not set(schema.names) <= set(frame.columns):
        return [], class_names
    frame = frame[list(schema.names)]
    rows = [[None if isinstance(v, float) and v != v else v for v in row] for row in frame.itertuples(index=False)]
    clean = []
    for row in rows:
        try:
            clean.append(schema.coerce_record(dict(zip(schema.names, row, strict=True)), "warm-up"))
        except ValueError:
            continue
    return clean, class_names


# ---------------------------------------------------------------------- the store
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
            loaded.series = self.metrics.series(loaded.version, loaded.class_names)
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
