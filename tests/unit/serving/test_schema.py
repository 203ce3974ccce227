"""The schema of a version, its request parsing (serving.request_formats) and its OpenAPI models: what /predict and /invocations accept, and what they refuse."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from serving.openapi_models import scoring_schemas
from serving.request_formats import InputProblem
from serving.schema import FeatureSpec, ModelSchema, UnsupportedSignature, features_from_signature
from tests.unit.serving.conftest import ROW, ROW_VIRGINICA

NAMES = list(ROW)
IRIS = ModelSchema([FeatureSpec(n, "double") for n in NAMES], model_name="iris-classifier")


def problem(call: Any) -> InputProblem:
    with pytest.raises(InputProblem) as caught:
        call()
    return caught.value


def test_named_positional_and_batch_rows_come_out_in_signature_order() -> None:
    reordered = dict(reversed(list(ROW.items())))
    assert IRIS.requests.parse_predict({"features": reordered}, max_batch=10) == [list(ROW.values())]
    assert IRIS.requests.parse_predict({"features": list(ROW.values())}, max_batch=10) == [list(ROW.values())]
    batch = IRIS.requests.parse_predict({"instances": [ROW, list(ROW_VIRGINICA.values())]}, max_batch=10)
    assert batch == [list(ROW.values()), list(ROW_VIRGINICA.values())]


def test_integers_are_accepted_for_double_features_as_floats() -> None:
    rows = IRIS.requests.parse_predict({"features": {**ROW, "petal_width": 1}}, max_batch=10)
    assert rows[0][3] == 1.0 and isinstance(rows[0][3], float)


@pytest.mark.parametrize(("body", "field", "words"), [
    pytest.param({"features": {k: v for k, v in ROW.items() if k != "petal_width"}}, "features.petal_width",
                 "is required", id="missing-feature"),
    pytest.param({"features": {**ROW, "colour": 1}}, "features.colour", "not a feature", id="extra-feature"),
    pytest.param({"features": {**ROW, "sepal_width": "wide"}}, "features.sepal_width", "must be a number",
                 id="string-for-number"),
    pytest.param({"features": {**ROW, "sepal_width": "3.5"}}, "features.sepal_width", "must be a number",
                 id="numeric-string-is-still-a-string"),
    pytest.param({"features": {**ROW, "sepal_width": True}}, "features.sepal_width", "must be a number",
                 id="boolean-for-number"),
    pytest.param({"features": {**ROW, "sepal_width": None}}, "features.sepal_width", "required, got null",
                 id="null-for-required"),
    pytest.param({"features": {**ROW, "petal_length": math.nan}}, "features.petal_length", "finite number, got NaN",
                 id="nan"),
    pytest.param({"features": {**ROW, "petal_length": math.inf}}, "features.petal_length", "got Infinity",
                 id="infinity"),
    pytest.param({"features": [5.1, 3.5, 1.4]}, "features", "has 3 values; this model takes 4", id="short-list"),
    pytest.param({"features": [5.1, 3.5, "x", 0.2]}, "features[2] (petal_length)", "must be a number",
                 id="positional-mistyped"),
    pytest.param({"instances": [ROW, {**ROW, "sepal_length": -math.inf}]}, "instances[1].sepal_length",
                 "finite", id="bad-row-in-batch"),
    pytest.param({"instances": []}, "instances", "empty", id="empty-batch"),
    pytest.param({"instances": ROW}, "instances", "must be a list", id="instances-not-a-list"),
    pytest.param({"features": ROW, "instances": [ROW]}, "", "exactly one of", id="both-keys"),
    pytest.param({"feature": ROW}, "feature", "unknown field", id="misspelt-key"),
    pytest.param({}, "", "empty", id="empty-object"),
    pytest.param([ROW], "", "must be a JSON object", id="top-level-list"),
    pytest.param({"features": "5.1,3.5"}, "features", "named features or a list", id="features-a-string"),
])
def test_bad_predict_input_names_the_field_and_the_problem(body: Any, field: str, words: str) -> None:
    found = problem(lambda: IRIS.requests.parse_predict(body, max_batch=10))
    assert found.field == field
    assert words in found.problem
    assert 400 <= found.status < 500


def test_a_batch_over_the_limit_is_refused_with_413_naming_the_setting() -> None:
    found = problem(lambda: IRIS.requests.parse_predict({"instances": [ROW] * 11}, max_batch=10))
    assert found.status == 413
    assert "DRIFTWATCH_MAX_BATCH" in found.problem and "11 rows" in found.problem


@pytest.mark.parametrize("body", [
    pytest.param({"dataframe_split": {"columns": NAMES, "data": [list(ROW.values())]}}, id="split"),
    pytest.param({"dataframe_split": {"index": [4], "columns": NAMES[::-1], "data": [list(ROW.values())[::-1]]}},
                 id="split-reordered-with-index"),
    pytest.param({"dataframe_records": [{**ROW, "ignored": "x"}]}, id="records-extra-column-ignored"),
    pytest.param({"instances": [ROW]}, id="instances-records"),
    pytest.param({"inputs": {k: [v] for k, v in ROW.items()}}, id="inputs-columns"),
    pytest.param({"inputs": ROW}, id="inputs-one-record"),
    pytest.param({"inputs": [{**ROW, "sepal_length": "5.1"}]}, id="numeric-string-converted-as-mlflow-does"),
    pytest.param({"inputs": [ROW], "params": {"a": 1}}, id="params-ignored"),
])
def test_invocation_formats_give_the_same_row(body: Any) -> None:
    assert IRIS.requests.parse_invocation(body, max_batch=10) == [list(ROW.values())]


@pytest.mark.parametrize(("body", "words"), [
    pytest.param({"inputs": [list(ROW.values())]}, "must name their columns", id="positional-rows"),
    pytest.param({"inputs": [ROW], "instances": [ROW]}, "exactly one of", id="two-formats"),
    pytest.param({"data": [ROW]}, "exactly one of", id="no-format"),
    pytest.param({"dataframe_split": {"data": [list(ROW.values())]}}, "column names", id="split-without-columns"),
    pytest.param({"dataframe_records": [{k: v for k, v in ROW.items() if k != "sepal_width"}]}, "is required",
                 id="missing-column"),
    pytest.param({"dataframe_records": []}, "empty", id="empty"),
    pytest.param({"inputs": {"sepal_length": [1.0, 2.0], "sepal_width": [1.0]}}, "same number", id="ragged-columns"),
])
def test_invocation_problems_are_client_errors(body: Any, words: str) -> None:
    found = problem(lambda: IRIS.requests.parse_invocation(body, max_batch=10))
    assert words in str(found)
    assert 400 <= found.status < 500


def test_csv_rows_are_read_by_header() -> None:
    text = "petal_width,petal_length,sepal_width,sepal_length\n0.2,1.4,3.5,5.1\n2.3,5.2,3.0,6.7\n"
    assert IRIS.requests.parse_csv(text, max_batch=10) == [list(ROW.values()), list(ROW_VIRGINICA.values())]
    assert "is required" in str(problem(lambda: IRIS.requests.parse_csv("sepal_length\n5.1\n", max_batch=10)))


def test_optional_features_may_be_missing_and_become_nan() -> None:
    schema = ModelSchema([FeatureSpec("a", "double"), FeatureSpec("b", "double", required=False)])
    rows = schema.requests.parse_predict({"features": {"a": 1.0}}, max_batch=1)
    assert rows[0][0] == 1.0 and math.isnan(rows[0][1])


def test_typed_features_check_their_own_types() -> None:
    schema = ModelSchema([FeatureSpec("n", "long"), FeatureSpec("flag", "boolean"), FeatureSpec("city", "string")])
    assert schema.requests.parse_predict({"features": {"n": 3, "flag": True, "city": "Oslo"}}, max_batch=1) == [[3, True, "Oslo"]]
    assert "integer" in problem(lambda: schema.requests.parse_predict({"features": {"n": 3.5, "flag": True, "city": "x"}},
                                                             max_batch=1)).problem
    assert "true or false" in problem(lambda: schema.requests.parse_predict({"features": {"n": 3, "flag": 1, "city": "x"}},
                                                                   max_batch=1)).problem
    assert "string" in problem(lambda: schema.requests.parse_predict({"features": {"n": 3, "flag": True, "city": 7}},
                                                            max_batch=1)).problem
    assert not schema.all_numeric


@pytest.mark.parametrize("features", [
    pytest.param(ROW, id="valid"),
    pytest.param({**ROW, "extra": 1.0}, id="extra"),
    pytest.param({k: v for k, v in ROW.items() if k != "sepal_length"}, id="missing"),
    pytest.param({**ROW, "sepal_length": "5.1"}, id="string"),
    pytest.param({**ROW, "sepal_length": math.nan}, id="nan"),
    pytest.param({**ROW, "sepal_length": 5}, id="integer"),
    pytest.param({**ROW, "sepal_length": 10**400}, id="integer-beyond-a-double"),
    pytest.param({**ROW, "sepal_length": -1.7e308}, id="large-but-finite"),
])
def test_the_documented_model_accepts_exactly_what_the_request_path_accepts(features: dict[str, Any]) -> None:
    try:
        IRIS.requests.parse_predict({"features": features}, max_batch=1)
        served = True
    except InputProblem:
        served = False
    try:
        IRIS.models.features.model_validate(features)
        documented = True
    except ValidationError:
        documented = False
    assert served == documented


def test_openapi_schemas_show_the_real_feature_names_and_types() -> None:
    schemas = scoring_schemas(IRIS, IRIS.models, task="classification", max_batch=100)
    features = schemas["IrisClassifierFeatures"]
    assert list(features["properties"]) == NAMES
    assert {p["type"] for p in features["properties"].values()} == {"number"}
    assert features["required"] == NAMES
    assert "IrisClassifierPredictRequest" in schemas and "IrisClassifierInvocation" in schemas
    row = schemas["IrisClassifierRow"]  # a positional row: exactly 4 values, each typed
    assert (row["minItems"], row["maxItems"], len(row["prefixItems"])) == (4, 4, 4)


def test_signatures_without_named_supported_columns_are_refused_with_a_reason() -> None:
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    with pytest.raises(UnsupportedSignature, match="no signature"):
        features_from_signature(None)
    with pytest.raises(UnsupportedSignature, match="tensor"):
        features_from_signature(ModelSignature(inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 4))])))
    with pytest.raises(UnsupportedSignature, match="binary"):
        features_from_signature(ModelSignature(inputs=Schema([ColSpec("binary", "blob")])))
    signature = ModelSignature(inputs=Schema([ColSpec("double", "a"), ColSpec("long", "b", required=False)]))
    assert features_from_signature(signature) == [FeatureSpec("a", "double"), FeatureSpec("b", "long", required=False)]


TYPED = ModelSchema([FeatureSpec("d", "double"), FeatureSpec("f", "float"), FeatureSpec("l", "long"),
                     FeatureSpec("i", "integer")], model_name="typed")
TYPED_ROW = {"d": 1.0, "f": 1.0, "l": 1, "i": 1}


@pytest.mark.parametrize(("field", "value", "words"), [
    pytest.param("d", 10**400, "out of range for a 64-bit float", id="double-from-a-huge-integer"),
    pytest.param("f", 1e39, "out of range for a 32-bit float", id="float32-overflow"),
    pytest.param("f", 10**39, "out of range for a 32-bit float", id="float32-overflow-from-an-integer"),
    pytest.param("l", 2**63, "out of range for a 64-bit integer", id="long-overflow"),
    pytest.param("l", -(2**63) - 1, "out of range for a 64-bit integer", id="long-underflow"),
    pytest.param("i", 2**31, "out of range for a 32-bit integer", id="int32-overflow"),
])
def test_numbers_out_of_the_columns_range_are_refused_on_both_paths(field: str, value: Any, words: str) -> None:
    """Issue #15: these reached the model (or float()) and were 500s; the column's type bounds them."""
    found = problem(lambda: TYPED.requests.parse_predict({"features": {**TYPED_ROW, field: value}}, max_batch=10))
    assert found.field == f"features.{field}" and words in found.problem
    found = problem(lambda: TYPED.requests.parse_invocation({"inputs": [{**TYPED_ROW, field: value}]}, max_batch=10))
    assert words in found.problem
    with pytest.raises(ValidationError):  # and the OpenAPI schema documents the column's range
        TYPED.models.features.model_validate({**TYPED_ROW, field: value})
    TYPED.models.features.model_validate(TYPED_ROW)
    found = problem(lambda: TYPED.requests.parse_invocation({"inputs": [{**TYPED_ROW, field: str(value)}]}, max_batch=10))
    assert words in found.problem or "finite" in found.problem


def test_the_edges_of_each_range_are_accepted() -> None:
    edge = {"d": 1.7e308, "f": 3.4e38, "l": 2**63 - 1, "i": -(2**31)}
    assert TYPED.requests.parse_predict({"features": edge}, max_batch=10) == [[1.7e308, 3.4e38, 2**63 - 1, -(2**31)]]


def test_csv_takes_a_bare_carriage_return_as_a_line_end_and_long_fields() -> None:
    text = "d,f,l,i\r1,2,3,4\r5,6,7,8\n"
    assert TYPED.requests.parse_csv(text, max_batch=10) == [[1.0, 2.0, 3, 4], [5.0, 6.0, 7, 8]]
    strings = ModelSchema([FeatureSpec("s", "string")], model_name="text")
    assert strings.requests.parse_csv("s\n" + "x" * 200_000 + "\n", max_batch=10) == [["x" * 200_000]]
