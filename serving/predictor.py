"""Inference for one loaded version: the model's own code, or ONNX Runtime when it gives the same answers.

scikit-learn spends ~0.4 ms validating its input for a single row; ONNX Runtime answers one row in
~15 µs. A version is compiled with skl2onnx (in float64) and the compiled model is used only if, on
the warm-up rows (the version's reference sample plus synthetic rows around its range), it predicts
exactly the same labels as the model's own ``predict`` and the same probabilities to 1e-6 (a
regressor: the same values to 1e-5, relative: ONNX Runtime's tree ensembles add their trees' outputs
in float32, about 2e-6 apart from scikit-learn's float64 sum for 50 trees). Otherwise the service
runs the model's own code, off the event loop.

A fault-injection version (``model_registry.faults.FaultyClassifier``) is unwrapped: its estimator is
what gets compiled, and its ``error_rate``/``latency_seconds``/``flip_rate`` become a ``Fault`` that the
request path applies around inference (sleeping with ``asyncio.sleep``, never blocking the event loop;
flipping labels after inference).
"""

from __future__ import annotations

import logging
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from model_registry.faults import FaultyClassifier, InjectedFault, flip_labels
from model_registry.tasks import TaskKind, detect_task, model_classes, parse_task
from serving.schema import ModelSchema

logger = logging.getLogger(__name__)

PROBABILITY_TOLERANCE = 1e-6
VALUE_TOLERANCE = 1e-5  # regressors: |onnx - sklearn| <= 1e-5 * max(1, |sklearn|)
SYNTHETIC_ROWS = 1000
Backend = Literal["onnx", "sklearn", "pyfunc"]


class ModelLoadError(RuntimeError):
    """The version cannot be served; the message says why."""


@dataclass(frozen=True)
class Fault:
    """Misbehaviour of a drill version, applied around inference for each request."""

    error_rate: float = 0.0
    latency_seconds: float = 0.0
    flip_rate: float = 0.0

    @property
    def active(self) -> bool:
        return self.error_rate > 0 or self.latency_seconds > 0 or self.flip_rate > 0

    def maybe_fail(self) -> None:
        if self.error_rate > 0 and random.random() < self.error_rate:
            raise InjectedFault(f"injected fault (errors={self.error_rate:g}) for a drill")

    def describe(self) -> str | None:
        parts = []
        if self.error_rate:
            parts.append(f"errors={self.error_rate:g}")
        if self.latency_seconds:
            parts.append(f"latency={self.latency_seconds:g}")
        if self.flip_rate:
            parts.append(f"flip={self.flip_rate:g}")
        return ",".join(parts) or None

    def flip(self, output: Output, classes: list[Any]) -> Output:
        """A silently wrong answer for a share ``flip_rate`` of rows (see ``model_registry.faults``)."""
        if self.flip_rate <= 0:
            return output
        labels, proba = flip_labels(np.asarray(output.labels, dtype=object), output.probabilities,
                                    np.asarray(classes, dtype=object), self.flip_rate)
        return Output(labels=labels.tolist(), probabilities=proba)


NO_FAULT = Fault()


@dataclass(frozen=True)
class Output:
    labels: list[Any]  # one label per row, as the model's predict returns them (plain Python values)
    probabilities: np.ndarray | None  # (rows, classes) in the order of ``classes``, or None


class Predictor(Protocol):
    backend: Backend
    blocking: bool  # True: slow enough to run in a worker thread
    wants_matrix: bool  # True: a float64 matrix; False: a DataFrame with the signature's columns

    def predict(self, x: Any) -> Output: ...


class OnnxPredictor:
    backend: Backend = "onnx"
    blocking = False
    wants_matrix = True

    def __init__(self, session: Any, *, with_probabilities: bool, dtype: Any = np.float64) -> None:
        self.session = session
        self.dtype = dtype
        self.input_name = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        self.label_output = "label" if "label" in outputs else outputs[0]
        self.outputs = [self.label_output]
        if with_probabilities and "probabilities" in outputs:
            self.outputs.append("probabilities")
        self.with_probabilities = len(self.outputs) == 2

    def predict(self, x: Any) -> Output:
        if self.dtype is not np.float64:
            x = np.asarray(x, dtype=self.dtype)
        result = self.session.run(self.outputs, {self.input_name: x})
        labels = result[0].ravel().tolist()
        return Output(labels=labels, probabilities=result[1] if self.with_probabilities else None)


class SklearnPredictor:
    backend: Backend = "sklearn"
    blocking = True
    wants_matrix = False

    def __init__(self, estimator: Any, *, with_probabilities: bool = True) -> None:
        self.estimator = estimator
        self.with_probabilities = with_probabilities and hasattr(estimator, "predict_proba")

    def predict(self, x: Any) -> Output:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = np.asarray(self.estimator.predict(x)).ravel().tolist()
            proba = np.asarray(self.estimator.predict_proba(x), dtype=np.float64) if self.with_probabilities else None
        return Output(labels=labels, probabilities=proba)


class PyfuncPredictor:
    backend: Backend = "pyfunc"
    blocking = True
    wants_matrix = False

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, x: Any) -> Output:
        raw = self.model.predict(x)
        if isinstance(raw, pd.DataFrame):
            raw = raw.iloc[:, 0]
        return Output(labels=np.asarray(raw).ravel().tolist(), probabilities=None)


@dataclass(frozen=True)
class LoadedPredictor:
    predictor: Predictor
    fault: Fault
    classes: list[Any] | None  # the estimator's classes_, when it has them
    check: str  # how the choice of backend was made, for /metadata and logs
    task: TaskKind = "classification"


def load_predictor(model_dir: Path, schema: ModelSchema, warmup_rows: list[list[Any]], *,
                   backend: str = "auto", task: str | None = None) -> LoadedPredictor:
    """Load the MLflow model at ``model_dir``, pick the fastest backend that gives its own answers,
    and warm it up on ``warmup_rows``. ``task`` overrides the detected kind (classification or
    regression)."""
    import mlflow

    flavors = mlflow.models.Model.load(str(model_dir / "MLmodel")).flavors
    if "sklearn" not in flavors:
        if backend == "onnx":
            raise ModelLoadError("DRIFTWATCH_INFERENCE_BACKEND=onnx, but the model is not a scikit-learn model")
        model = mlflow.pyfunc.load_model(str(model_dir))
        pyfunc = PyfuncPredictor(model)
        _warm_up(pyfunc, schema, warmup_rows)
        return LoadedPredictor(pyfunc, NO_FAULT, None, "pyfunc model: served through mlflow.pyfunc",
                               parse_task(task) if task else "regression")

    estimator = mlflow.sklearn.load_model(str(model_dir))
    fault = NO_FAULT
    if isinstance(estimator, FaultyClassifier):
        fault = Fault(float(estimator.error_rate), float(estimator.latency_seconds),
                      float(getattr(estimator, "flip_rate", 0.0)))
        estimator = estimator.estimator
    kind = detect_task(estimator, task)
    classes = model_classes(estimator) if kind == "classification" and hasattr(estimator, "classes_") else None
    native = SklearnPredictor(estimator, with_probabilities=kind == "classification")
    if backend == "native" or not schema.all_numeric:
        why = "DRIFTWATCH_INFERENCE_BACKEND=native" if backend == "native" else "non-numeric features"
        _warm_up(native, schema, warmup_rows)
        return LoadedPredictor(native, fault, classes, f"scikit-learn ({why})", kind)
    try:
        compiled = compile_onnx(estimator, len(schema.names), with_probabilities=native.with_probabilities,
                                classifier=kind == "classification")
        rows = verification_rows(schema, warmup_rows)
        mismatch = compare(compiled, native, schema, rows, regression=kind == "regression")
    except Exception as exc:  # skl2onnx raises many kinds for models it cannot convert
        mismatch = f"cannot compile to ONNX ({type(exc).__name__}: {str(exc)[:200]})"
    if mismatch is None:
        _warm_up(compiled, schema, warmup_rows)
        same = (f"same values (±{VALUE_TOLERANCE:g} relative)" if kind == "regression" else
                f"same labels and probabilities (±{PROBABILITY_TOLERANCE:g})")
        return LoadedPredictor(compiled, fault, classes, f"onnx: {same} as scikit-learn on {len(rows)} warm-up rows",
                               kind)
    if backend == "onnx":
        raise ModelLoadError(f"DRIFTWATCH_INFERENCE_BACKEND=onnx, but {mismatch}")
    logger.warning("serving with scikit-learn itself: %s", mismatch)
    _warm_up(native, schema, warmup_rows)
    return LoadedPredictor(native, fault, classes, f"scikit-learn ({mismatch})", kind)


def compile_onnx(estimator: Any, n_features: int, *, with_probabilities: bool,
                 classifier: bool = True) -> OnnxPredictor:
    """Compile in float64; a model whose float64 graph ONNX Runtime cannot run (tree ensembles: its
    TreeEnsembleRegressor computes in float32) is compiled in float32, which is what scikit-learn's
    trees compare with anyway. Either way ``compare`` decides whether the result is used."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    options = ort.SessionOptions()
    # One thread: the service is one process on a shared machine; requests are single rows.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    first_error: Exception | None = None
    # zipmap is an option of classifiers with probabilities only: regressors and LinearSVC refuse it.
    # Options are keyed by the final estimator: a Pipeline otherwise hands its last step zipmap=True.
    final = final_estimator(estimator)
    attempts = [(tensor, dtype, zipmap) for tensor, dtype in ((DoubleTensorType, np.float64),
                                                             (FloatTensorType, np.float32))
                for zipmap in ((True, False) if classifier else (False,))]
    for tensor, dtype, zipmap in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                onx = to_onnx(estimator, initial_types=[("X", tensor([None, n_features]))],
                              options={id(final): {"zipmap": False} if zipmap else {}})
            session = ort.InferenceSession(onx.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # skl2onnx and onnxruntime raise many kinds
            first_error = first_error or exc
            continue
        return OnnxPredictor(session, with_probabilities=with_probabilities, dtype=dtype)
    assert first_error is not None
    raise first_error


def final_estimator(estimator: Any) -> Any:
    """The estimator that makes the predictions: the last step of a (nested) Pipeline, else itself."""
    steps = getattr(estimator, "steps", None)
    return final_estimator(steps[-1][1]) if steps else estimator


def verification_rows(schema: ModelSchema, warmup_rows: list[list[Any]], *, seed: int = 0) -> np.ndarray:
    """The warm-up rows plus synthetic rows spread over (and a little beyond) their range."""
    base = schema.to_matrix(warmup_rows) if warmup_rows else np.zeros((1, len(schema.names)))
    rng = np.random.default_rng(seed)
    low, high = np.nanmin(base, axis=0), np.nanmax(base, axis=0)
    span = np.where(high > low, high - low, 1.0)
    synthetic = rng.uniform(low - 0.25 * span, high + 0.25 * span, size=(SYNTHETIC_ROWS, base.shape[1]))
    for i, spec in enumerate(schema.features):
        if spec.kind in ("long", "integer"):
            synthetic[:, i] = np.round(synthetic[:, i])
    return np.vstack([base, synthetic])


def compare(candidate: Predictor, native: SklearnPredictor, schema: ModelSchema, rows: np.ndarray, *,
            regression: bool = False) -> str | None:
    """None when ``candidate`` answers like ``native`` on every row (and on single rows); else why not."""
    frame = schema.to_frame(rows.tolist())
    want = native.predict(frame)
    got = candidate.predict(rows)
    if regression:
        expected = np.asarray(want.labels, dtype=np.float64)
        found = np.asarray(got.labels, dtype=np.float64)
        if expected.shape != found.shape:
            return f"ONNX answers {found.size} values for {expected.size} rows"
        gap = np.abs(found - expected) / np.maximum(1.0, np.abs(expected))
        worst = float(np.max(gap)) if gap.size else 0.0
        if not worst <= VALUE_TOLERANCE:
            return f"ONNX values differ from scikit-learn by up to {worst:.2g} (relative) on the warm-up rows"
        single = np.asarray(candidate.predict(rows[:1]).labels, dtype=np.float64)
        first = float(expected[0])
        if single.size != 1 or not abs(float(single[0]) - first) <= VALUE_TOLERANCE * max(1.0, abs(first)):
            return "ONNX answers a single row differently from a batch"
        return None
    bad = [i for i, (a, b) in enumerate(zip(want.labels, got.labels, strict=True)) if a != b]
    if bad:
        return f"ONNX labels differ from scikit-learn on {len(bad)} of {len(rows)} warm-up rows"
    if want.probabilities is not None:
        if got.probabilities is None:
            return "the ONNX model has no probabilities output"
        worst = float(np.max(np.abs(want.probabilities - got.probabilities)))
        if not worst <= PROBABILITY_TOLERANCE:
            return f"ONNX probabilities differ from scikit-learn by up to {worst:.2g} on the warm-up rows"
    one = candidate.predict(rows[:1])
    if one.labels != want.labels[:1]:
        return "ONNX answers a single row differently from a batch"
    return None


def _warm_up(predictor: Predictor, schema: ModelSchema, rows: list[list[Any]]) -> None:
    """Run the first requests' code paths (allocations, lazy imports) before the version takes traffic."""
    if not rows:
        return
    sample = rows[: min(len(rows), 64)]
    for chunk in (sample[:1], sample):
        x = schema.to_matrix(chunk) if predictor.wants_matrix else schema.to_frame(chunk)
        try:
            predictor.predict(x)
        except Exception as exc:
            raise ModelLoadError(f"the model fails on its warm-up rows: {type(exc).__name__}: {exc}") from exc
