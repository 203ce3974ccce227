"""What kind of model a version is: a classifier (labels of any type, with or without
``predict_proba``) or a regressor. Everything downstream follows the kind: the response schema, the
prediction log record, metrics, prediction drift, the quality gate and ``driftwatch versions``.

The kind is detected from the estimator (scikit-learn's own estimator type, then ``classes_``) and
can always be given explicitly; it is recorded with each version (tag ``driftwatch.task``) and in its
reference data, so no later step guesses again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

TaskKind = Literal["classification", "regression"]
TASK_KINDS: tuple[TaskKind, ...] = ("classification", "regression")


def unwrap(model: Any) -> Any:
    """The estimator inside a drill wrapper (``model_registry.faults.FaultyClassifier``)."""
    from model_registry.faults import FaultyClassifier

    return model.estimator if isinstance(model, FaultyClassifier) else model


def parse_task(value: str) -> TaskKind:
    text = value.strip().lower()
    for kind in TASK_KINDS:
        if text == kind:
            return kind
    raise ValueError(f"task {value!r} is not one of {', '.join(TASK_KINDS)}")


def detect_task(model: Any, override: str | None = None) -> TaskKind:
    """``override`` when given; else scikit-learn's estimator type (a Pipeline answers for its last
    step); else a model with ``classes_`` is a classifier; anything else is a regressor."""
    if override:
        return parse_task(override)
    estimator = unwrap(model)
    from sklearn.base import is_classifier, is_regressor

    try:
        if is_classifier(estimator):
            return "classification"
        if is_regressor(estimator):
            return "regression"
    except Exception:  # not a scikit-learn estimator: fall through to duck typing
        pass
    return "classification" if getattr(estimator, "classes_", None) is not None else "regression"


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON and Parquet keep (``np.int64(1)`` -> ``1``)."""
    return value.item() if isinstance(value, np.generic) else value


def model_classes(model: Any) -> list[Any]:
    """The classifier's ``classes_`` in order, as plain Python values (int, str, bool, ...)."""
    classes = getattr(unwrap(model), "classes_", None)
    if classes is None:
        raise ValueError("the classifier has no classes_ (is it fitted?); pass the task explicitly if it "
                         "is a regressor")
    return [plain(c) for c in np.asarray(classes).ravel().tolist()]


def class_display_names(classes: Sequence[Any], names: Sequence[str] | None = None) -> list[str]:
    """Display names in the order of ``classes``: ``names`` when given (one per class), else the
    labels as text (``True`` -> ``"True"``, ``1`` -> ``"1"``)."""
    if names is not None:
        if len(names) != len(classes):
            raise ValueError(f"{len(names)} class names for {len(classes)} classes ({list(classes)[:10]})")
        shown = [str(n) for n in names]
    else:
        shown = [str(c) for c in classes]
    if len(set(shown)) != len(shown):
        raise ValueError(f"class names must be distinct, got {shown[:20]}")
    return shown
