import pytest

from model_registry.gate import GatePolicy, evaluate_gate

POLICY = GatePolicy(min_accuracy=0.85, max_regression=0.02)


@pytest.mark.parametrize(
    ("candidate", "production", "promote", "words"),
    [
        pytest.param({"test_accuracy": 0.90}, None, True, "no production", id="first-version-above-minimum-is-promoted"),
        pytest.param({"test_accuracy": 0.80}, None, False, "below the minimum", id="below-minimum-is-refused"),
        pytest.param({"test_accuracy": 0.85}, None, True, "reaches", id="exactly-the-minimum-is-enough"),
        pytest.param({"test_accuracy": 0.93}, {"test_accuracy": 0.95}, True, "within", id="small-regression-within-margin"),
        pytest.param({"test_accuracy": 0.92}, {"test_accuracy": 0.95}, False, "worse than", id="regression-beyond-margin"),
        pytest.param({"test_accuracy": 0.99}, {"test_accuracy": 0.95}, True, "within", id="improvement-is-promoted"),
        pytest.param({}, None, False, "no test_accuracy", id="candidate-without-metric-is-refused"),
        pytest.param({"test_accuracy": 0.9}, {}, False, "cannot be compared", id="production-without-metric-blocks"),
        pytest.param({"test_accuracy": float("nan")}, None, False, "no test_accuracy", id="nan-metric-is-refused"),
    ],
)
def test_quality_gate(candidate: dict[str, float], production: dict[str, float] | None, promote: bool,
                      words: str) -> None:
    decision = evaluate_gate(candidate, production, POLICY)
    assert decision.promote is promote
    assert words in decision.reason


def test_gate_reason_names_the_production_version() -> None:
    decision = evaluate_gate({"test_accuracy": 0.5}, {"test_accuracy": 0.95}, GatePolicy(0.1, 0.02),
                             production_version="7")
    assert not decision.promote
    assert "production v7 (0.9500)" in decision.reason


def test_a_regressor_is_judged_on_rmse_lower_is_better_with_a_relative_margin() -> None:
    policy = GatePolicy(task="regression")
    assert evaluate_gate({"test_rmse": 10.1}, {"test_rmse": 10.0}, policy).promote  # 1% worse: within 2%
    refused = evaluate_gate({"test_rmse": 10.5}, {"test_rmse": 10.0}, policy, production_version="4")
    assert not refused.promote and "worse than production v4" in refused.reason
    assert evaluate_gate({"test_rmse": 3.0}, None, policy).promote
    assert not evaluate_gate({"test_rmse": 3.0}, None, GatePolicy(task="regression", max_error=2.0)).promote
    assert not evaluate_gate({"test_accuracy": 0.99}, None, policy).promote  # no test_rmse: cannot judge


def test_production_metrics_that_cannot_be_read_block_promotion() -> None:
    decision = evaluate_gate({"test_accuracy": 0.99}, None, POLICY, production_version="2",
                             production_error="registry unreachable")
    assert not decision.promote and "cannot read the metrics of production v2" in decision.reason


def test_another_gate_metric_can_be_chosen() -> None:
    policy = GatePolicy(metric="f1_macro")
    assert not evaluate_gate({"test_accuracy": 0.99, "f1_macro": 0.5}, None, policy).promote
    with pytest.raises(ValueError, match="gate metric"):
        evaluate_gate({}, None, GatePolicy(metric="loss"))
