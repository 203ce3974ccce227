"""Train a baseline classifier, log it to MLflow and register it with its reference data."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from model_registry.client import ModelRegistry
from model_registry.data import load_iris_dataset
from model_registry.faults import FaultSpec, FaultyClassifier
from model_registry.gate import GateDecision, GatePolicy, evaluate_gate
from model_registry.reference import (
    HOLDOUT_FILE,
    REFERENCE_ARTIFACT_PATH,
    build_holdout,
    build_reference,
    write_reference,
)
from model_registry.settings import RegistrySettings
from model_registry.versions import TAG_FAULT, TAG_MODEL_KIND

ModelKind = Literal["logreg", "svm"]
MODEL_KINDS: tuple[ModelKind, ...] = ("logreg", "svm")
FAULTY_TYPES = ["model_registry.faults.FaultyClassifier"]


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
        clf = SVC(kernel="rbf", C=1.0, probability=True, random_state=seed)
    else:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def evaluate(model: Any, x_train: Any, y_train: Any, x_test: Any, y_test: Any) -> dict[str, float]:
    train_acc = float(accuracy_score(y_train, model.predict(x_train)))
    predicted = model.predict(x_test)
    proba = model.predict_proba(x_test)
    test_acc = float(accuracy_score(y_test, predicted))
    return {
        "train_accuracy": train_acc,
        "test_accuracy": test_acc,
        "precision_macro": float(precision_score(y_test, predicted, average="macro", zero_division=0)),
        "recall_macro": float(recall_score(y_test, predicted, average="macro", zero_division=0)),
        "f1_macro": float(f1_score(y_test, predicted, average="macro", zero_division=0)),
        "roc_auc_ovr": float(roc_auc_score(y_test, proba, multi_class="ovr", average="macro")),
        "overfit_gap": train_acc - test_acc,
    }


def _pip_requirements() -> list[str]:
    import pandas
    import sklearn

    return [f"mlflow=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}",
            f"numpy=={np.__version__}", f"pandas=={pandas.__version__}"]


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
    metrics = evaluate(estimator, x_train, y_train, x_test, y_test)
    served: Any = estimator
    if fault is not None:
        served = FaultyClassifier(estimator, error_rate=fault.error_rate, latency_seconds=fault.latency_seconds,
                                  flip_rate=fault.flip_rate)

    # The fluent API logs to the process-wide URIs; point them at this registry.
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    experiment_id = registry.experiment_id()
    params: dict[str, Any] = {"model": model, "seed": seed, "test_size": 0.2, "train_rows": len(x_train)}
    params.update({f"clf_{k}": v for k, v in estimator.named_steps["clf"].get_params().items()
                   if isinstance(v, int | float | str | bool)})
    with registry._call("logging the training run"), mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        if fault is not None:
            mlflow.set_tag(TAG_FAULT, fault.describe())
        example = x_train.head(5)
        signature = infer_signature(example, estimator.predict(example))
        mlflow.sklearn.log_model(
            served, name="model", signature=signature, input_example=example,
            pip_requirements=_pip_requirements(),
            skops_trusted_types=FAULTY_TYPES if fault is not None else None,
        )
        reference = build_reference(estimator, x_train, data.class_names, model_name=settings.model_name,
                                    max_rows=settings.reference_rows, seed=seed)
        with tempfile.TemporaryDirectory(prefix="driftwatch-ref-") as tmp:
            folder = write_reference(reference, Path(tmp))
            build_holdout(estimator, x_test, y_test).to_csv(folder / HOLDOUT_FILE, index=False)
            mlflow.log_artifacts(str(folder), REFERENCE_ARTIFACT_PATH)
        model_uri = f"runs:/{run.info.run_id}/model"
        logged = mlflow.last_logged_model()
        if logged is not None:
            model_uri = logged.model_uri
    run_id = run.info.run_id
    if not register:
        return TrainResult(run_id=run_id, metrics=metrics, version=None, gate=None, promoted=False)

    with registry._call(f"registering {settings.model_name!r}"):
        tags: dict[str, str] = {TAG_MODEL_KIND: str(model)}
        if fault is not None:
            tags[TAG_FAULT] = fault.describe()
        mv = mlflow.register_model(model_uri, settings.model_name, tags=tags)
    version = str(mv.version)
    if not promote:
        return TrainResult(run_id=run_id, metrics=metrics, version=version, gate=None, promoted=False)

    current = registry.production_version()
    gate = evaluate_gate(metrics, current.metrics if current else None,
                         GatePolicy(settings.min_accuracy, settings.max_regression),
                         production_version=current.version if current else None)
    if gate.promote:
        registry.promote(version, actor=actor, reason=f"quality gate: {gate.reason}")
    return TrainResult(run_id=run_id, metrics=metrics, version=version, gate=gate, promoted=gate.promote)
