"""The fast path gives the model's own answers; faults are applied around it; mismatches fall back."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from model_registry.faults import InjectedFault
from serving.predictor import (
    Fault,
    ModelLoadError,
    Output,
    SklearnPredictor,
    compare,
    load_predictor,
    verification_rows,
)
from serving.schema import FeatureSpec, ModelSchema
from tests.unit.serving.conftest import ROW, SavedModel

IRIS = ModelSchema([FeatureSpec(n, "double") for n in ROW])


def reference_rows(saved: SavedModel) -> list[list[float]]:
    assert saved.reference_dir is not None
    return pd.read_parquet(saved.reference_dir / "features.parquet").to_numpy().tolist()


@pytest.mark.parametrize("kind", ["logreg", "svm"])
def test_onnx_answers_equal_scikit_learn_on_reference_and_synthetic_rows(saved_models: dict[str, SavedModel],
                                                                         kind: str) -> None:
    saved = saved_models[kind]
    loaded = load_predictor(saved.model_dir, IRIS, reference_rows(saved))
    assert loaded.predictor.backend == "onnx"
    rows = verification_rows(IRIS, reference_rows(saved), seed=7)  # another draw than the load-time check
    frame = IRIS.to_frame(rows.tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_labels = saved.estimator.predict(frame).tolist()
        want_proba = saved.estimator.predict_proba(frame)
    got = loaded.predictor.predict(rows)
    assert got.labels == want_labels
    assert got.probabilities is not None
    np.testing.assert_allclose(got.probabilities, want_proba, atol=1e-6, rtol=0)
    single = loaded.predictor.predict(rows[:1])
    assert single.labels == want_labels[:1]


def test_fault_versions_are_unwrapped_and_their_fault_kept(saved_models: dict[str, SavedModel]) -> None:
    failing = load_predictor(saved_models["failing"].model_dir, IRIS, reference_rows(saved_models["failing"]))
    assert failing.fault == Fault(error_rate=1.0, latency_seconds=0.0)
    assert failing.predictor.backend == "onnx"  # the wrapped estimator is what gets compiled
    with pytest.raises(InjectedFault):
        failing.fault.maybe_fail()
    slow = load_predictor(saved_models["slow"].model_dir, IRIS, reference_rows(saved_models["slow"]))
    assert slow.fault.latency_seconds == pytest.approx(0.2) and slow.fault.error_rate == 0
    slow.fault.maybe_fail()  # no error share: never raises


def test_native_backend_runs_the_models_own_code(saved_models: dict[str, SavedModel]) -> None:
    loaded = load_predictor(saved_models["logreg"].model_dir, IRIS, reference_rows(saved_models["logreg"]),
                            backend="native")
    assert loaded.predictor.backend == "sklearn" and loaded.predictor.blocking
    out = loaded.predictor.predict(IRIS.to_frame([list(ROW.values())]))
    assert out.labels == [0]
    assert loaded.classes == [0, 1, 2]


class _AlwaysVirginica:
    backend = "onnx"
    blocking = False
    wants = "matrix"

    def predict(self, x: Any) -> Output:
        return Output(labels=[2] * len(x), probabilities=None)


def test_a_compiled_model_that_disagrees_is_not_used(saved_models: dict[str, SavedModel]) -> None:
    native = SklearnPredictor(saved_models["logreg"].estimator)
    rows = verification_rows(IRIS, reference_rows(saved_models["logreg"]))
    assert "labels differ" in str(compare(_AlwaysVirginica(), native, IRIS, rows))

    class Shifted:
        backend, blocking, wants = "onnx", False, "matrix"

        def predict(self, x: Any) -> Output:
            out = native.predict(IRIS.to_frame(np.asarray(x).tolist()))
            assert out.probabilities is not None
            return Output(out.labels, out.probabilities + 1e-4)

    assert "probabilities differ" in str(compare(Shifted(), native, IRIS, rows))


@pytest.mark.filterwarnings("ignore")  # MLflow nags about type hints on the test's tiny pyfunc model
def test_onnx_backend_refuses_a_model_that_is_not_scikit_learn(tmp_path: Any) -> None:
    import mlflow

    class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # MLflow reads the hints
            return [0] * len(model_input)

    from mlflow.models import infer_signature

    example = pd.DataFrame([ROW])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(str(tmp_path / "echo"), python_model=Echo(), pip_requirements=["mlflow"],
                                 signature=infer_signature(example, [0]))
    with pytest.raises(ModelLoadError, match="not a scikit-learn model"):
        load_predictor(tmp_path / "echo", IRIS, [list(ROW.values())], backend="onnx")
    loaded = load_predictor(tmp_path / "echo", IRIS, [list(ROW.values())])
    assert loaded.predictor.backend == "pyfunc"
    assert loaded.predictor.predict(IRIS.to_frame([list(ROW.values())] * 2)).labels == [0, 0]


def test_a_pipeline_ending_in_a_classifier_without_probabilities_compiles() -> None:
    """skl2onnx hands a Pipeline's last classifier zipmap=True unless the options name it; LinearSVC
    has no zipmap option, so the options are keyed by the final estimator (labels 1..3 kept)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from serving.predictor import compile_onnx

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 3)) + np.repeat(np.eye(3) * 3, 100, axis=0)
    y = np.repeat([1, 2, 3], 100)
    model = Pipeline([("scale", StandardScaler()), ("svc", LinearSVC(random_state=0))]).fit(x, y)
    schema = ModelSchema([FeatureSpec(n, "double") for n in ("a", "b", "c")])
    compiled = compile_onnx(model, schema, with_probabilities=False, classifier=True)
    assert compare(compiled, SklearnPredictor(model, with_probabilities=False), schema,
                   verification_rows(schema, x.tolist())) is None
    assert compiled.predict(x[:5]).labels == model.predict(x[:5]).tolist()


def _churn(handle_unknown: str) -> tuple[Any, ModelSchema, list[list[Any]]]:
    """A Pipeline with a ColumnTransformer: one-hot string codes ("01", "NA") and scaled numbers whose
    names have spaces, string labels."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(5)
    n = 600
    x = pd.DataFrame({"region": rng.choice(["01", "02", "NA"], n), "plan": rng.choice(["basic", "pro"], n),
                      "monthly charges": rng.normal(70, 15, n), "tenure (months)": rng.integers(1, 72, n)})
    score = (x["monthly charges"] - 70) / 15 - x["tenure (months)"] / 36 + (x["plan"] == "basic")
    y = np.where(score + rng.normal(0, 0.3, n) > 0, "yes", "no")
    model = Pipeline([("encode", ColumnTransformer([
        ("codes", OneHotEncoder(handle_unknown=handle_unknown), ["region", "plan"]),
        ("numbers", StandardScaler(), ["monthly charges", "tenure (months)"])])),
        ("clf", LogisticRegression(max_iter=1000))]).fit(x, y)
    schema = ModelSchema([FeatureSpec("region", "string"), FeatureSpec("plan", "string"),
                          FeatureSpec("monthly charges", "double"), FeatureSpec("tenure (months)", "long")])
    return model, schema, x.head(200).to_numpy().tolist()


def test_a_column_transformer_over_string_columns_compiles_with_one_input_per_column() -> None:
    from serving.predictor import compare_unseen, compile_onnx, predictor_input

    model, schema, rows = _churn("ignore")
    compiled = compile_onnx(model, schema, with_probabilities=True, classifier=True)
    assert compiled.wants == "rows" and len(compiled.inputs) == 4
    native = SklearnPredictor(model)
    checked = verification_rows(schema, rows, seed=3)
    assert len(checked) == len(rows) + 1000 and {r[0] for r in checked} == {"01", "02", "NA"}
    assert compare(compiled, native, schema, checked) is None
    assert compare_unseen(compiled, native, schema, checked) is None  # handle_unknown="ignore": same answers
    got = compiled.predict(predictor_input(compiled, schema, rows[:1]))
    want_labels = model.predict(schema.to_frame(rows[:1])).tolist()
    assert got.labels == want_labels and want_labels[0] in ("yes", "no")
    assert got.probabilities is not None
    np.testing.assert_allclose(got.probabilities, model.predict_proba(schema.to_frame(rows[:1])), atol=1e-6)


def test_a_model_that_refuses_unseen_categories_is_not_served_by_onnx() -> None:
    from serving.predictor import compare_unseen, compile_onnx

    model, schema, rows = _churn("error")
    compiled = compile_onnx(model, schema, with_probabilities=True, classifier=True)
    native = SklearnPredictor(model)
    checked = verification_rows(schema, rows)
    assert compare(compiled, native, schema, checked) is None
    reason = compare_unseen(compiled, native, schema, checked)
    assert reason is not None and "refuses a category it has not seen" in reason
