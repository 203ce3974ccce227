"""Training data: Iris with readable feature names (it ships with scikit-learn, no download)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.datasets import load_iris

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@dataclass(frozen=True)
class Dataset:
    features: pd.DataFrame
    target: pd.Series
    class_names: tuple[str, ...]
    target_name: str


def load_iris_dataset() -> Dataset:
    raw = load_iris(as_frame=True)
    features = raw.data.copy()
    features.columns = list(IRIS_FEATURES)
    features = features.astype("float64")
    target = raw.target.astype("int64").rename("species")
    return Dataset(features=features, target=target,
                   class_names=tuple(str(n) for n in raw.target_names), target_name="species")
