"""Local copies of model versions on disk: the model cache.

Why its own module: the copies outlive the process (serving starts from the last good copy when the
registry is down) and their layout is a small on-disk format: every version that loads is kept
under ``<cache>/<model>/v<N>/{model,reference,version.json}`` (written to a temporary folder and
renamed, so a half-written copy is never used), with ``last-good.json`` pointing at the newest good
one; the newest ``keep`` copies (and the protected ones) stay.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from driftwatch.clock import iso_utc
from model_registry import RegistryError, RegistryUnavailable, VersionInfo

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "version.json"
LAST_GOOD = "last-good.json"


class ModelSource(Protocol):
    """What the store needs from the registry (``model_registry.ModelRegistry`` is one)."""

    def production_version(self, *, with_metrics: bool = True) -> VersionInfo | None: ...

    def download_model(self, version: str, dst: Path) -> Path: ...

    def download_reference(self, version: str, dst: Path) -> Path: ...



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
