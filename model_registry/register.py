"""Register a model the user already trained: `driftwatch register` and ``driftwatch.register(...)``.

From a fitted estimator (or an MLflow model URI, a local MLflow model folder, a joblib/pickle file)
plus its training features (and target), this checks or infers the signature, detects the task kind,
builds the reference data (``model_registry.reference``), scores the holdout, logs all of it as one
MLflow run, registers a version and, when asked, promotes it through the quality gate. The demo's
``driftwatch train`` goes through the same function.
"""

from __future__ import annotations

import math
import pickle
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_registry.client import ModelRegistry
from model_registry.errors import RegistryError
from model_registry.gate import GateDecision, GatePolicy, check_metric, evaluate_gate
from model_registry.reference import (
    HOLDOUT_FILE,
    REFERENCE_ARTIFACT_PATH,
    build_holdout,
    build_reference,
    plain_columns,
    write_reference,
)
from model_registry.settings import RegistrySettings
from model_registry.tasks import TaskKind, detect_task, model_classes, unwrap
from model_registry.versions import TAG_FAULT, TAG_MODEL_KIND, TAG_TASK

FAULTY_TYPES = ["model_registry.faults.FaultyClassifier"]  # tests save drill versions with this list
_CODE = re.compile(r"^[+-]?0\d")  # "01", "007": codes, not numbers


class RegisterError(RegistryError):
    """The model or data cannot be registered; the message says what to change."""


@dataclass(frozen=True)
class RegisterResult:
    run_id: str
    model_uri: str
    task: TaskKind
    metrics: dict[str, float]
    version: str | None
    gate: GateDecision | None
    promoted: bool


# ---------------------------------------------------------------------- inputs
def read_table(path: str | Path, *, string_columns: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV or Parquet file. Parquet keeps its types. CSV is read as text and a column becomes numeric
    only when every value is a number and none is a code with a leading zero (``"01"`` stays text;
    ``"NA"`` is a value, only empty cells are missing); ``string_columns`` always stay text."""
    file = Path(path)
    if not file.is_file():
        raise RegisterError(f"data file {file} does not exist")
    if file.suffix.lower() in (".parquet", ".pq"):
        return plain_columns(pd.read_parquet(file, engine="pyarrow"))
    if file.suffix.lower() not in (".csv", ".txt"):
        raise RegisterError(f"data file {file}: use a .csv or .parquet file")
    frame = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""])
    keep = set(string_columns)
    for name in frame.columns:
        if name in keep:
            continue
        column = frame[name]
        present = column.dropna()
        if present.empty or present.str.match(_CODE).any():
            continue
        numbers = pd.to_numeric(present, errors="coerce")
        if numbers.notna().all():
            converted = pd.to_numeric(column, errors="coerce")
            whole = converted.dropna()
            is_int = bool((whole == whole.round()).all()) and not column.str.contains(r"[.eE]", na=False).any()
            frame[name] = converted.astype("Int64" if converted.isna().any() else "int64") if is_int else converted
    return frame


def load_estimator(source: Any) -> tuple[Any, Any]:
    """(estimator, MLflow signature or None) from an estimator object, an MLflow model URI
    (``runs:/``, ``models:/``, ``file:``), a local MLflow model folder, or a joblib/pickle file."""
    if not isinstance(source, str | Path):
        return source, None
    text = str(source)
    path = Path(text)
    is_mlflow_folder = path.is_dir() and (path / "MLmodel").is_file()
    if is_mlflow_folder or re.match(r"^[a-z][a-z0-9+.-]*:/", text):
        import mlflow

        try:
            info = mlflow.models.get_model_info(text)
            if "sklearn" not in info.flavors:
                raise RegisterError(f"{text} is not a scikit-learn model (flavors: {', '.join(info.flavors)}); "
                                    "Driftwatch serves scikit-learn-style models")
            return mlflow.sklearn.load_model(text), info.signature
        except RegisterError:
            raise
        except Exception as exc:
            raise RegisterError(f"cannot load the MLflow model {text}: {type(exc).__name__}: {exc}") from exc
    if not path.is_file():
        raise RegisterError(f"model {text} is neither an MLflow model URI, an MLflow model folder nor a file")
    try:
        if path.suffix.lower() in (".joblib", ".jl"):
            import joblib

            return joblib.load(path), None
        with path.open("rb") as handle:
            return pickle.load(handle), None  # the user's own model file, loaded at their request
    except Exception as exc:
        raise RegisterError(f"cannot load the model file {path}: {type(exc).__name__}: {exc}") from exc


def _signature_columns(signature: Any) -> list[tuple[str, str]]:
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not getattr(inputs, "has_input_names", lambda: False)():
        return []
    out = []
    for spec in inputs.inputs:
        kind = getattr(spec, "type", None)
        out.append((str(spec.name), str(getattr(kind, "name", kind))))
    return out


def align_features(features: pd.DataFrame, signature: Any) -> pd.DataFrame:
    """The features in the signature's column order; fails naming the columns the data lacks."""
    columns = _signature_columns(signature)
    if not columns:
        return features
    names = [n for n, _ in columns]
    missing = [n for n in names if n not in features.columns]
    if missing:
        raise RegisterError(f"the training data lacks the model signature's columns {missing}")
    return features[names]


# ---------------------------------------------------------------------- evaluation
def evaluate_model(model: Any, task: TaskKind, x: pd.DataFrame, y: Any, *, prefix: str = "test") -> dict[str, float]:
    """Holdout metrics by task. Classification: ``<prefix>_accuracy``, ``precision_macro``,
    ``recall_macro``, ``f1_macro`` (and ``roc_auc_ovr`` with ``predict_proba``); regression:
    ``<prefix>_rmse``, ``<prefix>_mae``, ``<prefix>_r2``."""
    from sklearn import metrics as skm

    estimator = unwrap(model)
    truth = np.asarray(y).ravel()
    predicted = np.asarray(estimator.predict(x)).ravel()
    if task == "regression":
        truth_f, predicted_f = truth.astype("float64"), predicted.astype("float64")
        out = {f"{prefix}_rmse": float(math.sqrt(skm.mean_squared_error(truth_f, predicted_f))),
               f"{prefix}_mae": float(skm.mean_absolute_error(truth_f, predicted_f))}
        if prefix == "test":
            out["test_r2"] = float(skm.r2_score(truth_f, predicted_f))
        return out
    out = {f"{prefix}_accuracy": float(skm.accuracy_score(truth, predicted))}
    if prefix != "test":
        return out
    out["precision_macro"] = float(skm.precision_score(truth, predicted, average="macro", zero_division=0))
    out["recall_macro"] = float(skm.recall_score(truth, predicted, average="macro", zero_division=0))
    out["f1_macro"] = float(skm.f1_score(truth, predicted, average="macro", zero_division=0))
    if hasattr(estimator, "predict_proba"):
        classes = model_classes(estimator)
        try:
            proba = np.asarray(estimator.predict_proba(x))
            if len(classes) == 2:
                out["roc_auc_ovr"] = float(skm.roc_auc_score(truth == classes[1], proba[:, 1]))
            else:
                out["roc_auc_ovr"] = float(skm.roc_auc_score(truth, proba, multi_class="ovr", average="macro",
                                                             labels=classes))
        except ValueError:  # a holdout without every class: no AUC, the rest stands
            pass
    return out


def _pip_requirements() -> list[str]:
    import mlflow
    import pandas
    import sklearn

    return [f"mlflow=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}",
            f"numpy=={np.__version__}", f"pandas=={pandas.__version__}"]


def _serialization(model: Any) -> dict[str, Any]:
    """MLflow saves scikit-learn models with skops, which loads only the types it is told to trust.
    The user registers their own model, so the types it is made of are trusted (the list is saved
    with the model); a model skops cannot write at all is saved with cloudpickle."""
    try:
        import skops.io as sio

        return {"skops_trusted_types": sorted(set(sio.get_untrusted_types(data=sio.dumps(model))))}
    except Exception:  # skops cannot represent it: the format MLflow used before skops
        return {"serialization_format": "cloudpickle"}


def _describe(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return "Pipeline(" + ",".join(type(step).__name__ for _, step in steps) + ")"
    return type(estimator).__name__


def _production_metrics(registry: ModelRegistry, task: TaskKind, x_holdout: pd.DataFrame | None, y_holdout: Any,
                        ) -> tuple[str | None, dict[str, float] | None, str | None]:
    """(version, metrics, error) of production: scored on the holdout when there is one, else its
    logged metrics. ``error`` says why they could not be had (which blocks the gate)."""
    try:
        current = registry.production_version(with_metrics=False)
    except RegistryError as exc:
        return None, None, str(exc)
    if current is None:
        return None, None, None
    production_task = current.tags.get(TAG_TASK)
    if production_task and production_task != task:
        return current.version, None, f"it is a {production_task} model and the candidate a {task} model"
    try:
        if x_holdout is not None and y_holdout is not None:
            import mlflow

            with tempfile.TemporaryDirectory(prefix="driftwatch-gate-") as tmp:
                folder = registry.download_model(current.version, Path(tmp))
                model = mlflow.sklearn.load_model(str(folder))
                return current.version, evaluate_model(model, task, x_holdout, y_holdout), None
        return current.version, registry.version_metrics(current.version), None
    except Exception as exc:  # any failure to get production's metrics blocks promotion
        return current.version, None, f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------- the call
def register(model: Any, x_train: pd.DataFrame, y_train: Any = None, *, x_holdout: pd.DataFrame | None = None,
             y_holdout: Any = None, name: str | None = None, task: str | None = None,
             class_names: Sequence[str] | None = None, promote: bool = False, gate_metric: str | None = None,
             settings: RegistrySettings | None = None, registry: ModelRegistry | None = None, actor: str = "api",
             tags: Mapping[str, str] | None = None, params: Mapping[str, Any] | None = None, seed: int = 0,
             served: Any = None, register_version: bool = True) -> RegisterResult:
    """Log ``model`` with its signature, reference data and holdout metrics, register a version of
    ``name`` (default ``DRIFTWATCH_MODEL_NAME``) and, with ``promote``, promote it through the gate.

    ``model``: a fitted scikit-learn-style estimator, an MLflow model URI or folder, or a joblib/pickle
    file. ``task``: ``classification`` or ``regression`` (detected when None). ``class_names``: display
    names in ``classes_`` order. ``served``: what to log instead of ``model`` (the demo's fault wrapper)."""
    import mlflow
    from mlflow.models import infer_signature

    base = settings or RegistrySettings()
    if name:
        base = base.model_copy(update={"model_name": name})
    registry = registry or ModelRegistry(base)
    estimator, signature = load_estimator(model)
    if not hasattr(estimator, "predict"):
        raise RegisterError(f"{type(estimator).__name__} has no predict(); register a fitted estimator")
    kind = detect_task(estimator, task)
    gate_metric = gate_metric or base.gate_metric
    if gate_metric is not None:
        try:
            check_metric(gate_metric)
        except ValueError as exc:
            raise RegisterError(str(exc)) from None
    x = plain_columns(pd.DataFrame(x_train))
    x.columns = [str(c) for c in x.columns]
    if signature is not None:
        x = align_features(x, signature)
    if (x_holdout is None) != (y_holdout is None):
        raise RegisterError("give both the holdout features and its target, or neither")
    holdout = None
    if x_holdout is not None:
        holdout = plain_columns(pd.DataFrame(x_holdout))
        holdout.columns = [str(c) for c in holdout.columns]
        missing = [c for c in x.columns if c not in holdout.columns]
        if missing:
            raise RegisterError(f"the holdout lacks the feature columns {missing}")
        holdout = holdout[list(x.columns)]
    try:
        predicted = estimator.predict(x.head(5))
    except Exception as exc:
        raise RegisterError(f"the model fails on the first training rows ({type(exc).__name__}: {exc}); are "
                            "these the features it was trained on?") from exc
    if signature is None:
        signature = infer_signature(x.head(5), predicted)
    try:
        reference = build_reference(estimator, x, class_names, model_name=registry.name,
                                    max_rows=base.reference_rows, seed=seed, task=kind)
    except ValueError as exc:
        raise RegisterError(f"cannot build the reference data: {exc}") from exc
    metrics: dict[str, float] = {}
    if y_train is not None:
        metrics.update(evaluate_model(estimator, kind, x, y_train, prefix="train"))
    if holdout is not None:
        metrics.update(evaluate_model(estimator, kind, holdout, y_holdout))
        if kind == "classification" and "train_accuracy" in metrics:
            metrics["overfit_gap"] = metrics["train_accuracy"] - metrics["test_accuracy"]
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    experiment_id = registry.experiment_id()
    described = _describe(estimator)
    run_params: dict[str, Any] = {"task": kind, "estimator": described, "train_rows": len(x),
                                  "features": len(x.columns)}
    if holdout is not None:
        run_params["holdout_rows"] = len(holdout)
    run_params.update(params or {})
    version_tags = {TAG_TASK: kind, TAG_MODEL_KIND: described, **dict(tags or {})}
    with registry._call("logging the run"), mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in run_params.items()})
        if metrics:
            mlflow.log_metrics(metrics)
        mlflow.set_tags(version_tags)
        logged_model = served if served is not None else estimator
        mlflow.sklearn.log_model(
            logged_model, name="model", signature=signature, input_example=x.head(5),
            pip_requirements=_pip_requirements(), **_serialization(logged_model),
        )
        with tempfile.TemporaryDirectory(prefix="driftwatch-ref-") as tmp:
            folder = write_reference(reference, Path(tmp))
            if holdout is not None:  # the quality service's reference quality (docs/quality.md)
                build_holdout(estimator, holdout, y_holdout).to_csv(folder / HOLDOUT_FILE, index=False)
            mlflow.log_artifacts(str(folder), REFERENCE_ARTIFACT_PATH)
        model_uri = f"runs:/{run.info.run_id}/model"
        logged = mlflow.last_logged_model()
        if logged is not None:
            model_uri = logged.model_uri
    run_id = run.info.run_id
    if not register_version:
        return RegisterResult(run_id, model_uri, kind, metrics, None, None, False)
    with registry._call(f"registering {registry.name!r}"):
        mv = mlflow.register_model(model_uri, registry.name, tags=version_tags)
    version = str(mv.version)
    if not promote:
        return RegisterResult(run_id, model_uri, kind, metrics, version, None, False)
    production_version, production, error = _production_metrics(registry, kind, holdout, y_holdout)
    policy = GatePolicy(base.min_accuracy, base.max_regression, metric=gate_metric, task=kind,
                        max_error=base.max_error)
    gate = evaluate_gate(metrics, production, policy, production_version=production_version,
                         production_error=error)
    if gate.promote:
        registry.promote(version, actor=actor, reason=f"quality gate: {gate.reason}")
    return RegisterResult(run_id, model_uri, kind, metrics, version, gate, gate.promote)


def fault_tags(fault: Any) -> dict[str, str]:
    return {TAG_FAULT: fault.describe()} if fault is not None else {}
