"""An Evidently HTML report of the current window against the reference, for people.

Evidently builds Plotly figures for every column, which takes seconds on large data; the reference
is sampled to a bounded size. The numbers the exporter publishes come from ``check``, not from here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from drift_exporter.reference import PreparedReference
from drift_exporter.window import Window


def window_frame(reference: PreparedReference, window: Window) -> pd.DataFrame:
    """The window's feature columns as a DataFrame in the reference's column order."""
    columns: dict[str, object] = {}
    for name in reference.feature_names:
        if reference.kinds[name] == "numeric":
            columns[name] = window.numeric.get(name, np.full(window.rows, np.nan))
        else:
            columns[name] = pd.Series(window.categorical.get(name, [None] * window.rows), dtype="object")
    return pd.DataFrame(columns)


def reference_frame(reference: PreparedReference, max_rows: int, *, seed: int = 0) -> pd.DataFrame:
    frame = reference.data.features[list(reference.feature_names)]
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    frame = frame.reset_index(drop=True).copy()
    for name in reference.feature_names:
        if reference.kinds[name] == "categorical":
            frame[name] = frame[name].map(lambda v: None if pd.isna(v) else str(v)).astype("object")
    return frame


def render_report(reference: PreparedReference, window: Window, *, max_reference_rows: int = 5000) -> str:
    """Standalone HTML of Evidently's ``DataDriftPreset`` (window = current, reference = reference)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [n for n in reference.feature_names if reference.kinds[n] == "numeric"]
    categorical = [n for n in reference.feature_names if reference.kinds[n] == "categorical"]
    current = window_frame(reference, window)
    # Evidently fails on a column with no values at all; leave such columns out of the report.
    usable = [n for n in reference.feature_names if current[n].notna().any()]
    definition = DataDefinition(numerical_columns=[n for n in numeric if n in usable],
                                categorical_columns=[n for n in categorical if n in usable])
    ref = reference_frame(reference, max_reference_rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset(columns=usable)]).run(
            Dataset.from_pandas(current[usable], data_definition=definition),
            Dataset.from_pandas(ref[usable], data_definition=definition),
        )
        return str(snapshot.get_html_str(as_iframe=False))
