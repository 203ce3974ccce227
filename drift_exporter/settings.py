"""Settings of the drift exporter. Only ``__main__`` reads the environment; tests pass values."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from drift_exporter.decisions import ANDERSON_THRESHOLD, ChiSquare, DriftPolicy, Method
from drift_exporter.stats import Correction
from driftwatch.logsegments import S3Location
from driftwatch.settings import DRIFT_PORT, DRIFT_PORT_ENV, PredictionLogSettings
from driftwatch.settings import env as _env


class DriftExporterSettings(PredictionLogSettings):
    """Everything ``python -m drift_exporter`` can be told (the shared part: ``driftwatch.settings``)."""

    host: str = Field(default="127.0.0.1", validation_alias=_env("DRIFTWATCH_DRIFT_HOST", "host"))
    port: int = Field(default=DRIFT_PORT, ge=0, le=65535, validation_alias=_env(DRIFT_PORT_ENV, "port"))
    prediction_log_s3_url: str | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_PREDICTION_LOG_S3_URL", "prediction_log_s3_url"),
        description="s3://bucket/prefix: read the window from the closed segments serving replicas upload under "
                    "<prefix>/<model name>/ instead of the local folder (endpoint and keys: boto3's environment).",
    )
    segment_cache_dir: Path | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_DRIFT_SEGMENT_CACHE_DIR", "segment_cache_dir"),
        description="Where the window's segments downloaded from S3 are kept; default $DRIFTWATCH_HOME/drift-segments.",
    )
    interval_seconds: float = Field(
        default=30.0, gt=0, le=86400, validation_alias=_env("DRIFTWATCH_DRIFT_INTERVAL_SECONDS", "interval_seconds"),
        description="Time between two checks.",
    )
    window_rows: int = Field(
        default=2000, ge=1, le=1_000_000, validation_alias=_env("DRIFTWATCH_DRIFT_WINDOW_ROWS", "window_rows"),
        description="The newest this many prediction rows form the window.",
    )
    window_max_age_seconds: float = Field(
        default=3600.0, ge=0,
        validation_alias=_env("DRIFTWATCH_DRIFT_WINDOW_MAX_AGE_SECONDS", "window_max_age_seconds"),
        description="Rows older than this are left out of the window (0: no age limit).",
    )
    log_abandoned_seconds: float = Field(
        default=30.0, gt=0, le=86400,
        validation_alias=_env("DRIFTWATCH_DRIFT_LOG_ABANDONED_SECONDS", "log_abandoned_seconds"),
        description="A serving process's log whose acknowledged seq (predictions-<instance>.acked) stays ahead "
                    "of its last written row this long, with no log_end line, was abandoned (serving and its "
                    "writer killed together): the gap is counted in model_prediction_log_lost_total.",
    )
    min_window_rows: int | None = Field(
        default=None, ge=1, validation_alias=_env("DRIFTWATCH_DRIFT_MIN_WINDOW_ROWS", "min_window_rows"),
        description="Below this many rows no verdict is published (the row count still is); default: the "
                    "window size, so verdicts come from full windows only.",
    )
    p_value_threshold: float = Field(
        default=0.05, gt=0, lt=1, validation_alias=_env("DRIFTWATCH_DRIFT_P_VALUE_THRESHOLD", "p_value_threshold"),
        description="Significance level of the statistical tests (KS, chi-square, z), after correction.",
    )
    anderson_threshold: float = Field(
        default=ANDERSON_THRESHOLD, gt=0, lt=1,
        validation_alias=_env("DRIFTWATCH_DRIFT_ANDERSON_THRESHOLD", "anderson_threshold"),
        description="Significance level of the Anderson-Darling test (Evidently's default for 'anderson': 0.1), "
                    "after correction.",
    )
    distance_threshold: float = Field(
        default=0.1, gt=0, validation_alias=_env("DRIFTWATCH_DRIFT_DISTANCE_THRESHOLD", "distance_threshold"),
        description="Drift when normed Wasserstein, Jensen-Shannon or PSI reaches this.",
    )
    share_threshold: float = Field(
        default=0.5, gt=0, le=1, validation_alias=_env("DRIFTWATCH_DRIFT_SHARE_THRESHOLD", "share_threshold"),
        description="Dataset drift when at least this share of the features drifted.",
    )
    multiple_testing: Correction = Field(
        default="bonferroni", validation_alias=_env("DRIFTWATCH_DRIFT_MULTIPLE_TESTING", "multiple_testing"),
        description="Correction of the per-feature p-values behind the dataset verdict: bonferroni, bh or none.",
    )
    numeric_method: Method | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_DRIFT_NUMERIC_METHOD", "numeric_method"),
        description="Force one method for numeric features; default: Evidently's choice per column.",
    )
    categorical_method: Method | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_DRIFT_CATEGORICAL_METHOD", "categorical_method"),
        description="Force one method for categorical features; default: Evidently's choice per column.",
    )
    chisquare: ChiSquare = Field(
        default="homogeneity", validation_alias=_env("DRIFTWATCH_DRIFT_CHISQUARE", "chisquare"),
        description="Where chi-square is chosen: homogeneity (reference and window both samples) or "
                    "goodness_of_fit (Evidently's: reference counts taken as exact).",
    )
    psi_bins: int = Field(default=10, ge=2, le=100, validation_alias=_env("DRIFTWATCH_DRIFT_PSI_BINS", "psi_bins"))
    max_categories: int = Field(
        default=50, ge=1, le=10_000, validation_alias=_env("DRIFTWATCH_DRIFT_MAX_CATEGORIES", "max_categories"),
        description="Reference categories beyond this many share one 'other' bucket in the chi-square test.",
    )
    report_max_rows: int = Field(
        default=5000, ge=10, validation_alias=_env("DRIFTWATCH_DRIFT_REPORT_MAX_ROWS", "report_max_rows"),
        description="/report samples the reference to at most this many rows (Evidently's HTML is slow).",
    )

    @model_validator(mode="after")
    def _policy_is_valid(self) -> DriftExporterSettings:
        self.policy()  # raises with a sentence when a combination is unsafe
        if self.prediction_log_s3_url is not None:
            self.prediction_log_s3_url = self.prediction_log_s3_url.strip() or None
        if self.prediction_log_s3_url:
            S3Location.parse(self.prediction_log_s3_url)
            S3Location.parse(self.prediction_log_s3_url).model_prefix(self.model_name)
        if self.min_window_rows is not None and self.min_window_rows > self.window_rows:
            raise ValueError(
                f"DRIFTWATCH_DRIFT_MIN_WINDOW_ROWS ({self.min_window_rows}) is larger than "
                f"DRIFTWATCH_DRIFT_WINDOW_ROWS ({self.window_rows}): no check could ever publish a verdict"
            )
        return self

    @property
    def effective_min_window_rows(self) -> int:
        return self.min_window_rows if self.min_window_rows is not None else self.window_rows

    @property
    def resolved_segment_cache_dir(self) -> Path:
        folder = self.segment_cache_dir or self.registry.home / "drift-segments"
        return folder.expanduser().resolve()

    def policy(self) -> DriftPolicy:
        return DriftPolicy(
            p_value_threshold=self.p_value_threshold, anderson_threshold=self.anderson_threshold,
            distance_threshold=self.distance_threshold,
            drift_share=self.share_threshold, correction=self.multiple_testing,
            min_window_rows=self.effective_min_window_rows, numeric_method=self.numeric_method,
            categorical_method=self.categorical_method, chisquare=self.chisquare,
        )
