"""The demo's model: train a baseline Iris classifier and register it through ``model_registry.register``
(the same path as anyone's own model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from model_registry.client import ModelRegistry
from model_registry.data import load_iris_dataset
from model_registry.faults import FaultSpec, FaultyClassifier
from model_registry.gate import GateDecision
from model_registry.register import fault_tags
from model_registry.register import register as register_model
from model_registry.settings import RegistrySettings
from model_registry.versions import TAG_MODEL_KIND

ModelKind = Literal["logreg", "svm"]
MODEL_KINDS: tuple[ModelKind, ...] = ("logreg", "svm")


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    metrics: dict[str, float]
    version: str | None
    gate: GateDecision | None
    promoted: bool


def build_estimator(kind: ModelKind, seed: int) -> Pipeline:
    if kind == "logreg":
        clf: Any = LogisticRegression(max_iter=1000, C=1.0, random_state=seed)
    elif kind == "svm":
        # scikit-learn 1.9 deprecates SVC(probability=True) (gone in 1.11); its replacement is Platt scaling by
        # CalibratedClassifierCV with one SVC fitted on all the data (ensemble=False), which skl2onnx converts too.
        clf = CalibratedClassifierCV(SVC(kernel="rbf", C=1.0, random_state=seed), ensemble=False)
    else:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def train_and_register(settings: RegistrySettings, *, model: ModelKind = "logreg", fault: FaultSpec | None = None,
                       seed: int = 0, register: bool = True, promote: bool = False,
                       actor: str = "cli", registry: ModelRegistry | None = None) -> TrainResult:
    """Fit, evaluate, log and (optionally) register and promote through the quality gate."""
    registry = registry or ModelRegistry(settings)
    data = load_iris_dataset()
    x_train, x_test, y_train, y_test = train_test_split(
        data.features, data.target, test_size=0.2, stratify=data.target, random_state=seed
    )
    estimator = build_estimator(model, seed).fit(x_train, y_train)
    served: Any = None
    if fault is not None:
        served = FaultyClassifier(estimator, error_rate=fault.error_rate, latency_seconds=fault.latency_seconds,
                                  flip_rate=fault.flip_rate)
    params: dict[str, Any] = {"model": model, "seed": seed, "test_size": 0.2}
    params.update({f"clf_{k}": v for k, v in estimator.named_steps["clf"].get_params().items()
                   if isinstance(v, int | float | str | bool)})
    result = register_model(estimator, x_train, y_train, x_holdout=x_test, y_holdout=y_test, task="classification",
                      class_names=data.class_names, promote=promote, settings=settings, registry=registry,
                      actor=actor, tags={TAG_MODEL_KIND: str(model), **fault_tags(fault)}, params=params,
                      seed=seed, served=served, register_version=register)
    return TrainResult(run_id=result.run_id, metrics=result.metrics, version=result.version, gate=result.gate,
                       promoted=result.promoted)
