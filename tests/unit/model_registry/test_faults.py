import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from model_registry.faults import FaultSpec, FaultyClassifier, InjectedFault


@pytest.mark.parametrize(
    ("text", "errors", "latency"),
    [("errors=0.5", 0.5, 0.0), ("latency=0.25", 0.0, 0.25), ("errors=1,latency=0.1", 1.0, 0.1)],
)
def test_fault_specs_parse(text: str, errors: float, latency: float) -> None:
    spec = FaultSpec.parse(text)
    assert (spec.error_rate, spec.latency_seconds) == (errors, latency)
    assert FaultSpec.parse(spec.describe()) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("errors=1.5", "must be in", id="share-above-one"),
        pytest.param("errors=0", "must be in", id="zero-share"),
        pytest.param("errors=half", "not a number", id="not-a-number"),
        pytest.param("crash=1", "unknown fault", id="unknown-kind"),
        pytest.param("errors", "has no '='", id="no-value"),
        pytest.param("", "empty fault", id="empty"),
        pytest.param("latency=-1", "must be in", id="negative-latency"),
    ],
)
def test_malformed_fault_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultSpec.parse(text)


def test_faulty_classifier_fails_about_the_configured_share_and_otherwise_answers_like_the_model() -> None:
    x = np.random.default_rng(0).normal(size=(60, 2))
    y = (x[:, 0] > 0).astype(int)
    base = LogisticRegression().fit(x, y)
    faulty = FaultyClassifier(base, error_rate=0.5)
    failures, answers = 0, []
    for _ in range(400):
        try:
            answers.append(faulty.predict_proba(x[:3]))
        except InjectedFault:
            failures += 1
    assert 140 < failures < 260
    assert all(np.array_equal(a, base.predict_proba(x[:3])) for a in answers)
    assert list(faulty.classes_) == [0, 1]


def test_flip_answers_another_class_for_about_the_share_with_the_confidence_unchanged() -> None:
    x = np.random.default_rng(1).normal(size=(3000, 2))
    y = np.digitize(x[:, 0], [-0.5, 0.5])
    base = LogisticRegression().fit(x, y)
    faulty = FaultyClassifier(base, flip_rate=0.3)
    honest, flipped = base.predict(x), faulty.predict(x)
    assert 0.25 < float(np.mean(honest != flipped)) < 0.35
    proba, flipped_proba = base.predict_proba(x), faulty.predict_proba(x)
    assert np.allclose(proba.max(axis=1), flipped_proba.max(axis=1))  # as confident as before
    assert 0.25 < float(np.mean(proba.argmax(axis=1) != flipped_proba.argmax(axis=1))) < 0.35
    spec = FaultSpec.parse("flip=0.3")
    assert spec.flip_rate == 0.3 and FaultSpec.parse(spec.describe()) == spec
    with pytest.raises(ValueError, match="must be in"):
        FaultSpec.parse("flip=1.5")
