"""Fixtures for the serving unit tests: real MLflow model folders (saved locally, no tracking server)
and a fake registry that serves them."""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sklearn.model_selection import train_test_split

from model_registry import RegistryError, RegistrySettings, RegistryUnavailable, VersionInfo
from model_registry.data import load_iris_dataset
from model_registry.faults import FaultyClassifier
from model_registry.reference import build_reference, write_reference
from model_registry.register import _serialization
from model_registry.training import build_estimator
from serving.settings import ServingSettings

MODEL_NAME = "iris-classifier"
ADMIN_TOKEN = "test-admin-token-0123456789"
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
ROW_VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}


@dataclass(frozen=True)
class SavedModel:
    model_dir: Path
    reference_dir: Path | None
    estimator: Any  # what was saved (a FaultyClassifier for drills)


def _save(root: Path, name: str, estimator: Any, reference_of: Any, x_train: Any, class_names: Any,
          *, with_reference: bool = True) -> SavedModel:
    import mlflow
    from mlflow.models import infer_signature

    example = x_train.head(5)
    signature = infer_signature(example, reference_of.predict(example))
    model_dir = root / name / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(estimator, str(model_dir), signature=signature, input_example=example,
                                  pip_requirements=["scikit-learn"],  # skips slow requirement inference
                                  **_serialization(estimator))  # the types it is made of, as register saves them
    reference_dir = None
    if with_reference:
        reference = build_reference(reference_of, x_train, class_names, model_name=MODEL_NAME, max_rows=120)
        reference_dir = write_reference(reference, root / name / "reference")
    return SavedModel(model_dir, reference_dir, estimator)


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SavedModel]:
    """logreg, svm, a version failing every call, a slow one, one without reference, a broken one."""
    root = tmp_path_factory.mktemp("serving-models")
    data = load_iris_dataset()
    x_train, _, y_train, _ = train_test_split(data.features, data.target, test_size=0.2, stratify=data.target,
                                              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logreg = build_estimator("logreg", 0).fit(x_train, y_train)
        svm = build_estimator("svm", 0).fit(x_train, y_train)
    names = data.class_names
    out = {
        "logreg": _save(root, "logreg", logreg, logreg, x_train, names),
        "svm": _save(root, "svm", svm, svm, x_train, names),
        "failing": _save(root, "failing", FaultyClassifier(logreg, error_rate=1.0), logreg, x_train, names),
        "slow": _save(root, "slow", FaultyClassifier(logreg, latency_seconds=0.2), logreg, x_train, names),
        "no-reference": _save(root, "no-reference", logreg, logreg, x_train, names, with_reference=False),
    }
    broken = root / "broken" / "model"
    shutil.copytree(out["logreg"].model_dir, broken)
    for path in broken.glob("model.*"):
        path.write_bytes(b"not a model")
    out["broken"] = SavedModel(broken, out["logreg"].reference_dir, None)
    return out


@dataclass
class FakeVersion:
    info: VersionInfo
    saved: SavedModel


@dataclass
class FakeRegistry:
    """The registry API the store uses, over local folders; ``available=False`` is an outage."""

    versions: dict[str, FakeVersion] = field(default_factory=dict)
    production: str | None = None
    available: bool = True
    calls: Counter[str] = field(default_factory=Counter)

    def add(self, saved: SavedModel, *, promote: bool = False, tags: dict[str, str] | None = None) -> str:
        version = str(len(self.versions) + 1)
        info = VersionInfo(name=MODEL_NAME, version=version, run_id=f"run{version}",
                           source=f"models:/m-{version}", created_at=datetime(2026, 1, 1, tzinfo=UTC),
                           tags=dict(tags or {}))
        self.versions[version] = FakeVersion(info, saved)
        if promote:
            self.production = version
        return version

    def _check(self, what: str) -> None:
        self.calls[what] += 1
        if not self.available:
            raise RegistryUnavailable(f"{what}: the registry cannot be reached (test outage)")

    def production_version(self, *, with_metrics: bool = True) -> VersionInfo | None:
        self._check("production_version")
        return None if self.production is None else self.versions[self.production].info

    def download_model(self, version: str, dst: Path) -> Path:
        self._check("download_model")
        target = dst / "artifacts"
        shutil.copytree(self.versions[version].saved.model_dir, target)
        return target

    def download_reference(self, version: str, dst: Path) -> Path:
        self._check("download_reference")
        reference = self.versions[version].saved.reference_dir
        if reference is None:
            raise RegistryError(f"v{version} has no reference data")
        target = dst / "reference"
        shutil.copytree(reference, target)
        return target


@pytest.fixture
def fake_registry(saved_models: dict[str, SavedModel]) -> FakeRegistry:
    registry = FakeRegistry()
    registry.add(saved_models["logreg"], promote=True)
    return registry


def make_settings(tmp_path: Path, **overrides: Any) -> ServingSettings:
    values: dict[str, Any] = {
        "registry": RegistrySettings(home=tmp_path / "home", model_name=MODEL_NAME, tracking_uri="sqlite:///unused.db"),
        "instance": "test",
        "poll_interval_seconds": 3600.0,  # tests drive reloads themselves unless they say otherwise
        "prediction_log_dir": tmp_path / "predictions",
        "model_cache_dir": tmp_path / "cache",
        "admin_token": ADMIN_TOKEN,
        "git_commit": "0123abc",
    }
    values.update(overrides)
    return ServingSettings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[ServingSettings]:
    yield make_settings(tmp_path)
