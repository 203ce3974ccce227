"""Run Evidently 0.7 on small frames and read back its per-column values (the oracle for our stats)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pandas as pd


def evidently_values(reference: pd.DataFrame, current: pd.DataFrame, checks: Sequence[tuple[str, str | None]], *,
                     numerical: Sequence[str] = (), categorical: Sequence[str] = ()) -> dict[tuple[str, str | None], tuple[str, float]]:
    """{(column, method or None for Evidently's default): (Evidently's method name, value)}."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))
    metrics = [ValueDrift(column=column, method=method) for column, method in checks]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report(metrics).run(Dataset.from_pandas(current, data_definition=definition),
                                       Dataset.from_pandas(reference, data_definition=definition))
    found = {}
    entries = [m for m in snapshot.dict()["metrics"] if m["config"]["type"].endswith("ValueDrift")]
    for (column, method), entry in zip(checks, entries, strict=True):
        assert entry["config"]["column"] == column
        found[(column, method)] = (str(entry["config"]["method"]), float(entry["value"]))
    return found
