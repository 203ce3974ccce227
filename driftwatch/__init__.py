"""driftwatch: serve, watch and roll back any scikit-learn-style model from the MLflow registry.

``driftwatch.register(model, X_train, y_train, X_holdout=..., y_holdout=..., name=..., promote=True)``
registers a model you trained (see docs/bring-your-own-model.md); it is imported on first use so that
``import driftwatch`` stays light.
"""

from __future__ import annotations

from typing import Any


def register(model: Any, X_train: Any, y_train: Any = None, *, X_holdout: Any = None,
             y_holdout: Any = None, **kwargs: Any) -> Any:
    """Register ``model`` with its reference data and holdout metrics; see ``model_registry.register``."""
    from model_registry.register import register as _register

    return _register(model, X_train, y_train, x_holdout=X_holdout, y_holdout=y_holdout, **kwargs)


__all__ = ["register"]
