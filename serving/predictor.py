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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from model_registry.faults import FaultyClassifier, InjectedFault, flip_labels
from model_registry.tasks import TaskKind, detect_task, model_classes, parse_task
from serving.schema import NUMERIC_KINDS, ModelSchema

logger = logging.getLogger(__name__)

PROBABILITY_TOLERANCE = 1e-6
VALUE_TOLERANCE = 1e-5  # regressors: |onnx - sklearn| <= 1e-5 * max(1, |sklearn|)
SYNTHETIC_ROWS = 1000
ONNX_KINDS = NUMERIC_KINDS | {"string"}  # column types ONNX is tried on
Backend = Literal["onnx", "sklearn", "pyfunc"]
# What a predictor is given: a float64 matrix (all-numeric schemas), a DataFrame with the signature's
# columns and dtypes (the model's own code), or the parsed rows as they are (ONNX with one input per
# column: string and numeric columns side by side).
InputKind = Literal["matrix", "frame", "rows"]


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
    wants: InputKind

    def predict(self, x: Any) -> Output: ...


def predictor_input(predictor: Predictor, schema: ModelSchema, rows: list[list[Any]]) -> Any:
    """The model input ``predictor`` takes, built from parsed rows in signature order."""
    if predictor.wants == "matrix":
        return schema.to_matrix(rows)
    return schema.to_frame(rows) if predictor.wants == "frame" else rows


class OnnxPredictor:
    """ONNX Runtime on one float matrix, or (``strings`` given) on one input per column: a Pipeline whose
    ColumnTransformer encodes string columns. skl2onnx names the inputs after the columns (spaces and
    punctuation replaced), so they are fed by position, in signature order."""

    backend: Backend = "onnx"
    blocking = False

    def __init__(self, session: Any, *, with_probabilities: bool, dtype: Any = np.float64,
                 strings: Sequence[bool] | None = None) -> None:
        self.session = session
        self.dtype = dtype
        self.inputs = [i.name for i in session.get_inputs()]
        self.input_name = self.inputs[0]
        self.strings = None if strings is None else list(strings)
        self.wants: InputKind = "matrix" if strings is None else "rows"
        outputs = [o.name for o in session.get_outputs()]
        self.label_output = "label" if "label" in outputs else outputs[0]
        self.outputs = [self.label_output]
        if with_probabilities and "probabilities" in outputs:
            self.outputs.append("probabilities")
        self.with_probabilities = len(self.outputs) == 2

    def predict(self, x: Any) -> Output:
        if self.strings is not None:
            feed = self.columns(x)
        else:
            feed = {self.input_name: x if self.dtype is np.float64 else np.asarray(x, dtype=self.dtype)}
        result = self.session.run(self.outputs, feed)
        labels = result[0].ravel().tolist()
        return Output(labels=labels, probabilities=result[1] if self.with_probabilities else None)

    def columns(self, rows: list[list[Any]]) -> dict[str, np.ndarray]:
        """One (rows, 1) array per input: text for string columns, ``dtype`` for the others."""
        assert self.strings is not None
        feed: dict[str, np.ndarray] = {}
        for j, (name, text) in enumerate(zip(self.inputs, self.strings, strict=True)):
            values = [row[j] for row in rows]
            if text:
                if any(not isinstance(v, str) for v in values):
                    raise ValueError(f"column {j} holds a value that is not text")
                feed[name] = np.array(values, dtype=object).reshape(-1, 1)
            else:
                feed[name] = np.array(values, dtype=self.dtype).reshape(-1, 1)
        return feed


class SklearnPredictor:
    backend: Backend = "sklearn"
    blocking = True
    wants: InputKind = "frame"

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
    wants: InputKind = "frame"

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
    other_types = sorted({f.kind for f in schema.features if f.kind not in ONNX_KINDS})
    if backend == "native":
        _warm_up(native, schema, warmup_rows)
        return LoadedPredictor(native, fault, classes, "scikit-learn (DRIFTWATCH_INFERENCE_BACKEND=native)", kind)
    rows: np.ndarray | list[list[Any]] = []
    optional_text = [f.name for f in schema.features if f.kind == "string" and not f.required]
    if other_types:
        mismatch: str | None = f"ONNX is not tried on {', '.join(other_types)} columns"
    elif optional_text:  # a missing text value has no ONNX string tensor to go in
        mismatch = f"ONNX is not tried on optional string columns ({', '.join(optional_text[:5])})"
    else:
        try:
            compiled = compile_onnx(estimator, schema, with_probabilities=native.with_probabilities,
                                    classifier=kind == "classification")
            rows = verification_rows(schema, warmup_rows)
            mismatch = compare(compiled, native, schema, rows, regression=kind == "regression")
            if mismatch is None and not schema.all_numeric:
                mismatch = compare_unseen(compiled, native, schema, rows, regression=kind == "regression")
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


def compile_onnx(estimator: Any, schema: ModelSchema, *, with_probabilities: bool,
                 classifier: bool = True) -> OnnxPredictor:
    """Compile in float64; a model whose float64 graph ONNX Runtime cannot run (tree ensembles: its
    TreeEnsembleRegressor computes in float32; a ColumnTransformer's one-hot output is float32) is
    compiled in float32, which is what scikit-learn's trees compare with anyway. An all-numeric schema
    is one matrix input (else, e.g. a ColumnTransformer selecting columns by name, one input per
    column); string columns always mean one input per column (``StringTensorType``). Either way
    ``compare`` decides whether the result is used."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    options = ort.SessionOptions()
    # One thread: the service is one process on a shared machine; requests are single rows.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    first_error: Exception | None = None
    # zipmap is an option of classifiers with probabilities only: regressors and LinearSVC refuse it.
    # Options are keyed by the final estimator: a Pipeline otherwise hands its last step zipmap=True.
    final = final_estimator(estimator)
    strings = [f.kind == "string" for f in schema.features]
    attempts = [(per_column, tensor, dtype, zipmap)
                for per_column in ((False, True) if schema.all_numeric else (True,))
                for tensor, dtype in ((DoubleTensorType, np.float64), (FloatTensorType, np.float32))
                for zipmap in ((True, False) if classifier else (False,))]
    for per_column, tensor, dtype, zipmap in attempts:
        inputs = ([(name, StringTensorType([None, 1]) if text else tensor([None, 1]))
                   for name, text in zip(schema.names, strings, strict=True)] if per_column
                  else [("X", tensor([None, len(schema.names)]))])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                onx = to_onnx(estimator, initial_types=inputs,
                              options={id(final): {"zipmap": False} if zipmap else {}})
            session = ort.InferenceSession(onx.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # skl2onnx and onnxruntime raise many kinds
            first_error = first_error or exc
            continue
        return OnnxPredictor(session, with_probabilities=with_probabilities, dtype=dtype,
                             strings=strings if per_column else None)
    assert first_error is not None
    raise first_error


def final_estimator(estimator: Any) -> Any:
    """The estimator that makes the predictions: the last step of a (nested) Pipeline, else itself."""
    steps = getattr(estimator, "steps", None)
    return final_estimator(steps[-1][1]) if steps else estimator


def verification_rows(schema: ModelSchema, warmup_rows: list[list[Any]], *,
                      seed: int = 0) -> np.ndarray | list[list[Any]]:
    """The warm-up rows plus synthetic rows spread over (and a little beyond) their range: a float
    matrix for an all-numeric schema, else rows (string columns draw from the values the warm-up rows
    hold)."""
    if schema.all_numeric:
        base = schema.to_matrix(warmup_rows) if warmup_rows else np.zeros((1, len(schema.names)))
        return np.vstack([base, _synthetic_numbers(schema, base, seed)])
    if not warmup_rows:
        raise ValueError("no warm-up rows to draw string values from")
    numeric = [i for i, f in enumerate(schema.features) if f.numeric]
    base = np.array([[row[i] for i in numeric] for row in warmup_rows], dtype=np.float64)
    numbers = _synthetic_numbers(schema, base, seed, columns=numeric)
    rng = np.random.default_rng(seed + 1)
    synthetic = [[None] * len(schema.names) for _ in range(SYNTHETIC_ROWS)]
    for j, spec in enumerate(schema.features):
        if spec.numeric:
            column = numbers[:, numeric.index(j)].tolist()
        else:
            seen = sorted({row[j] for row in warmup_rows if isinstance(row[j], str)})
            column = [seen[k] for k in rng.integers(0, len(seen), SYNTHETIC_ROWS)] if seen else [""] * SYNTHETIC_ROWS
        for row, value in zip(synthetic, column, strict=True):
            row[j] = value
    return [list(row) for row in warmup_rows] + synthetic


def _synthetic_numbers(schema: ModelSchema, base: np.ndarray, seed: int,
                       columns: list[int] | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low, high = np.nanmin(base, axis=0), np.nanmax(base, axis=0)
    span = np.where(high > low, high - low, 1.0)
    synthetic = rng.uniform(low - 0.25 * span, high + 0.25 * span, size=(SYNTHETIC_ROWS, base.shape[1]))
    for i, j in enumerate(columns if columns is not None else range(base.shape[1])):
        if schema.features[j].kind in ("long", "integer"):
            synthetic[:, i] = np.round(synthetic[:, i])
    return synthetic


UNSEEN = "__driftwatch_unseen_category__"


def compare_unseen(candidate: Predictor, native: SklearnPredictor, schema: ModelSchema,
                   rows: np.ndarray | list[list[Any]], *, regression: bool = False) -> str | None:
    """A category no row held, in each string column in turn: ONNX's one-hot encoding ignores it, so
    the model's own code must answer it too (``handle_unknown="ignore"``), and the same."""
    listed = rows.tolist() if isinstance(rows, np.ndarray) else rows
    unseen = []
    for j, spec in enumerate(schema.features):
        if spec.kind == "string":
            row = list(listed[0])
            row[j] = UNSEEN
            unseen.append(row)
    try:
        native.predict(schema.to_frame(unseen))
    except Exception as exc:  # the model's own code refuses it, with an error of its choosing
        return (f"scikit-learn refuses a category it has not seen ({type(exc).__name__}; e.g. "
                "OneHotEncoder(handle_unknown='error')) where ONNX would answer")
    return compare(candidate, native, schema, unseen, regression=regression)


def compare(candidate: Predictor, native: SklearnPredictor, schema: ModelSchema,
            rows: np.ndarray | list[list[Any]], *, regression: bool = False) -> str | None:
    """None when ``candidate`` answers like ``native`` on every row (and on single rows); else why not."""
    listed = rows.tolist() if isinstance(rows, np.ndarray) else rows
    want = native.predict(schema.to_frame(listed))
    got = candidate.predict(predictor_input(candidate, schema, listed))
    if regression:
        expected = np.asarray(want.labels, dtype=np.float64)
        found = np.asarray(got.labels, dtype=np.float64)
        if expected.shape != found.shape:
            return f"ONNX answers {found.size} values for {expected.size} rows"
        gap = np.abs(found - expected) / np.maximum(1.0, np.abs(expected))
        worst = float(np.max(gap)) if gap.size else 0.0
        if not worst <= VALUE_TOLERANCE:
            return f"ONNX values differ from scikit-learn by up to {worst:.2g} (relative) on the warm-up rows"
        single = np.asarray(candidate.predict(predictor_input(candidate, schema, listed[:1])).labels,
                            dtype=np.float64)
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
    one = candidate.predict(predictor_input(candidate, schema, listed[:1]))
    if one.labels != want.labels[:1]:
        return "ONNX answers a single row differently from a batch"
    return None


def _warm_up(predictor: Predictor, schema: ModelSchema, rows: list[list[Any]]) -> None:
    """Run the first requests' code paths (allocations, lazy imports) before the version takes traffic."""
    if not rows:
        return
    sample = rows[: min(len(rows), 64)]
    for chunk in (sample[:1], sample):
        x = predictor_input(predictor, schema, chunk)
        try:
            predictor.predict(x)
        except Exception as exc:
            raise ModelLoadError(f"the model fails on its warm-up rows: {type(exc).__name__}: {exc}") from exc
