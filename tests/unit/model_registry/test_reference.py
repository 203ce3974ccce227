import json
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from model_registry.data import IRIS_FEATURES, load_iris_dataset
from model_registry.reference import REFERENCE_FORMAT, build_reference, read_reference, write_reference


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
    with pytest.raises(FileNotFoundError, match="driftwatch train"):
        read_reference(tmp_path)
