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
        pytest.param({"test_accuracy": 0.9}, {}, True, "no production", id="production-without-metric-does-not-block"),
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
