import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Perceptron
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from model_registry.data import IRIS_FEATURES, load_iris_dataset
from model_registry.reference import (
    PREDICTION_QUANTILES,
    REFERENCE_FORMAT,
    build_reference,
    read_reference,
    value_buckets,
    write_reference,
)
from model_registry.tasks import detect_task


def test_reference_round_trips_with_the_models_own_predictions(tmp_path: Path) -> None:
    data = load_iris_dataset()
    model = LogisticRegression(max_iter=500).fit(data.features, data.target)
    reference = build_reference(model, data.features, data.class_names, model_name="iris", max_rows=100)
    folder = write_reference(reference, tmp_path / "reference")
    loaded = read_reference(folder)
    assert list(loaded.features.columns) == list(IRIS_FEATURES)
    assert len(loaded.features) == len(loaded.predictions) == 100
    assert list(loaded.predictions.columns) == ["class_id", "class_name", "probability"]
    expected = model.predict(loaded.features)
    assert (loaded.predictions["class_id"].to_numpy() == expected).all()
    assert set(loaded.predictions["class_name"]) <= {"setosa", "versicolor", "virginica"}
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["format"] == REFERENCE_FORMAT
    assert meta["feature_types"] == dict.fromkeys(IRIS_FEATURES, "numeric")
    assert meta["rows"] == 100


def test_reading_a_folder_without_reference_files_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="driftwatch register"):
        read_reference(tmp_path)


# ---------------------------------------------------------------------- any model (issue #11)
def _mixed(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "region": rng.choice(["01", "02", "NA", "10"], n),  # codes a CSV round trip would break
        "amount ($)": rng.normal(100, 20, n),
        "segment": pd.Categorical(rng.choice(["a", "b"], n), categories=["a", "b", "never-used"]),
    })
    target = pd.Series(np.where(frame["amount ($)"] > 100, "high", "low"))
    return frame, target


def _pipeline(classifier: Any) -> Pipeline:
    encode = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "segment"])],
                               remainder="passthrough")
    return Pipeline([("encode", encode), ("clf", classifier)])


def test_v2_keeps_string_codes_and_string_labels_and_drops_unused_categories(tmp_path: Path) -> None:
    features, target = _mixed()
    model = _pipeline(LogisticRegression(max_iter=500)).fit(features, target)
    reference = build_reference(model, features, model_name="m", max_rows=200)
    loaded = read_reference(write_reference(reference, tmp_path / "ref"))
    assert loaded.task == "classification"
    assert loaded.classes == ["high", "low"] and loaded.class_names == ["high", "low"]
    assert set(loaded.features["region"]) == {"01", "02", "NA", "10"}  # not 1, 2, NaN, 10
    assert loaded.features["region"].isna().sum() == 0
    assert set(loaded.features["segment"].dropna()) == {"a", "b"}
    assert not isinstance(loaded.features["segment"].dtype, pd.CategoricalDtype)
    assert loaded.metadata["feature_types"] == {"region": "categorical", "amount ($)": "numeric",
                                                "segment": "categorical"}
    assert set(loaded.predictions["class_id"]) <= {"high", "low"}


def test_labels_starting_at_one_without_predict_proba_keep_their_own_names(tmp_path: Path) -> None:
    data = load_iris_dataset()
    model = Perceptron(random_state=0).fit(data.features, data.target + 1)
    loaded = read_reference(write_reference(build_reference(model, data.features, model_name="m", max_rows=150),
                                            tmp_path / "ref"))
    assert loaded.classes == [1, 2, 3] and loaded.class_names == ["1", "2", "3"]
    assert loaded.predictions["probability"].isna().all()
    assert (loaded.predictions["class_id"].to_numpy() == model.predict(loaded.features)).all()
    assert set(loaded.predictions["class_name"]) <= {"1", "2", "3"}


def test_a_regressor_records_its_predicted_values_and_their_quantiles(tmp_path: Path) -> None:
    data = load_iris_dataset()
    x, y = data.features[["sepal_length", "sepal_width", "petal_width"]], data.features["petal_length"]
    model = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(x, y)
    loaded = read_reference(write_reference(build_reference(model, x, model_name="m", max_rows=150),
                                            tmp_path / "ref"))
    assert loaded.task == "regression" and loaded.classes == [] and "class_names" not in loaded.metadata
    assert list(loaded.predictions.columns) == ["value"]
    np.testing.assert_allclose(loaded.predictions["value"], model.predict(loaded.features))
    quantiles = loaded.prediction_quantiles
    assert list(quantiles) == list(PREDICTION_QUANTILES)
    assert quantiles[0.5] == pytest.approx(float(np.median(model.predict(loaded.features))))
    assert list(value_buckets(quantiles)) == sorted(set(value_buckets(quantiles)))


def test_the_task_is_detected_and_can_be_overridden() -> None:
    data = load_iris_dataset()
    assert detect_task(LogisticRegression(max_iter=200).fit(data.features, data.target)) == "classification"
    assert detect_task(_pipeline(LogisticRegression())) == "classification"
    assert detect_task(GradientBoostingRegressor()) == "regression"
    assert detect_task(GradientBoostingRegressor(), "classification") == "classification"
    with pytest.raises(ValueError, match="regression"):
        detect_task(GradientBoostingRegressor(), "ranking")


def test_a_v1_csv_reference_still_reads(tmp_path: Path) -> None:
    folder = tmp_path / "v1"
    folder.mkdir()
    pd.DataFrame({"a": [1.0, 2.0]}).to_csv(folder / "features.csv", index=False)
    pd.DataFrame({"class_id": [0, 1], "class_name": ["no", "yes"], "probability": [0.9, 0.8]}).to_csv(
        folder / "predictions.csv", index=False)
    (folder / "metadata.json").write_text(json.dumps({
        "format": "driftwatch.reference/v1", "model_name": "m", "feature_names": ["a"],
        "feature_types": {"a": "numeric"}, "class_names": ["no", "yes"], "rows": 2, "created_at": "2026-01-01"}))
    loaded = read_reference(folder)
    assert loaded.task == "classification" and loaded.classes == [0, 1] and loaded.class_names == ["no", "yes"]
