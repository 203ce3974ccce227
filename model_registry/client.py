"""The registry API every Driftwatch part uses. The only module that talks to MLflow's registry."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from driftwatch.clock import iso_utc
from model_registry.errors import (
    PromotionRefused,
    RegistryError,
    RegistryUnavailable,
    VersionNotFound,
    classify_mlflow_error,
)
from model_registry.reference import REFERENCE_ARTIFACT_PATH
from model_registry.rollback import choose_rollback_target
from model_registry.settings import RegistrySettings
from model_registry.versions import (
    QUARANTINE_TAGS,
    TAG_PREVIOUS_VERSION,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_PROMOTION_REASON,
    TAG_QUARANTINE_ALERT,
    TAG_QUARANTINE_INCIDENT,
    TAG_QUARANTINE_REASON,
    TAG_QUARANTINED,
    TAG_QUARANTINED_AT,
    TAG_QUARANTINED_BY,
    TAG_ROLLED_BACK_TO,
    PromotionResult,
    RollbackResult,
    VersionInfo,
)

log = logging.getLogger("model_registry")
PRODUCTION_STAGE = "Production"
ARCHIVED_STAGE = "Archived"


def configure_mlflow_http(timeout_seconds: float) -> None:
    """MLflow's client retries for minutes by default; Driftwatch wants to know quickly (the webhook
    answers 503 so Alertmanager retries). Users' own settings win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(1, timeout_seconds))))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow prints "View run ... at: <tracking URI>" to stdout, password included when the URI has one.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


class ModelRegistry:
    """Promote, roll back and inspect versions of one registered model, by alias or by stage."""

    def __init__(self, settings: RegistrySettings, *, client: MlflowClient | None = None) -> None:
        configure_mlflow_http(settings.registry_timeout_seconds)
        self.settings = settings
        self.name = settings.model_name
        self.alias = settings.model_alias
        self.mode = settings.registry_mode
        self.tracking_uri = settings.resolved_tracking_uri
        if settings.is_embedded:
            settings.resolved_home.mkdir(parents=True, exist_ok=True)
            settings.artifact_root.mkdir(parents=True, exist_ok=True)
        self.client = client or MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # ---------------------------------------------------------------- errors
    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Translate MLflow and transport errors into the API's errors, with a sentence for people."""
        try:
            yield
        except RegistryError:
            raise
        except Exception as exc:  # MLflow, SQLAlchemy, requests, OS errors: classified by type and status
            kind = classify_mlflow_error(exc)
            detail = _first_line(str(exc)) if isinstance(exc, MlflowException) else f"{type(exc).__name__}: {exc}"
            if kind is RegistryUnavailable:
                raise RegistryUnavailable(
                    f"{what}: the registry at {self.tracking_uri} cannot be reached ({detail}); "
                    "check that the MLflow server is running and MLFLOW_TRACKING_URI is right"
                ) from exc
            raise kind(f"{what}: {detail}") from exc

    # ---------------------------------------------------------------- reading
    def model_uri(self, version: str) -> str:
        return f"models:/{self.name}/{version}"

    def model_exists(self) -> bool:
        try:
            with self._call(f"model {self.name!r}"):
                self.client.get_registered_model(self.name)
        except VersionNotFound:
            return False
        return True

    def _aliases_by_version(self) -> dict[str, tuple[str, ...]]:
        with self._call(f"model {self.name!r}"):
            model = self.client.get_registered_model(self.name)
        result: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            result.setdefault(str(version), []).append(alias)
        return {v: tuple(sorted(a)) for v, a in result.items()}

    def _info(self, mv: ModelVersion, *, aliases: tuple[str, ...] | None = None,
              with_metrics: bool = True) -> VersionInfo:
        metrics: dict[str, float] = {}
        if with_metrics and mv.run_id:
            with contextlib.suppress(RegistryError), self._call(f"run of v{mv.version}"):
                metrics = dict(self.client.get_run(mv.run_id).data.metrics)
        return VersionInfo(
            name=mv.name,
            version=str(mv.version),
            run_id=mv.run_id or None,
            source=str(mv.source),
            created_at=datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, tz=UTC),
            aliases=aliases if aliases is not None else tuple(sorted(getattr(mv, "aliases", []) or [])),
            stage=str(mv.current_stage or "None"),
            tags=dict(mv.tags or {}),
            metrics=metrics,
        )

    def get_version(self, version: str, *, with_metrics: bool = True) -> VersionInfo:
        version = str(version).strip()
        if not version.isdigit():
            raise VersionNotFound(f"version {version!r} is not a version number (use e.g. 3)")
        try:
            with self._call(f"version {version} of model {self.name!r}"):
                mv = self.client.get_model_version(self.name, version)
        except VersionNotFound:
            raise VersionNotFound(
                f"version {version} of model {self.name!r} does not exist; `driftwatch versions` lists them"
            ) from None
        return self._info(mv, with_metrics=with_metrics)

    def list_versions(self, *, with_metrics: bool = True) -> list[VersionInfo]:
        aliases = self._aliases_by_version()
        with self._call(f"versions of model {self.name!r}"):
            found = self.client.search_model_versions(f"name='{self.name}'")
        infos = [self._info(mv, aliases=aliases.get(str(mv.version), ()), with_metrics=with_metrics)
                 for mv in found]
        return sorted(infos, key=lambda v: v.number, reverse=True)

    def production_version(self, *, with_metrics: bool = True) -> VersionInfo | None:
        """The version in production (alias mode: the alias; stage mode: newest in Production)."""
        if self.mode == "alias":
            # Read the alias table rather than get_model_version_by_alias: backends disagree on the
            # error code for a missing alias.
            try:
                with self._call(f"model {self.name!r}"):
                    aliases = self.client.get_registered_model(self.name).aliases or {}
            except VersionNotFound:
                return None
            version = aliases.get(self.alias)
            return None if version is None else self.get_version(str(version), with_metrics=with_metrics)
        try:
            with self._call(f"versions of model {self.name!r}"):
                found = [mv for mv in self.client.search_model_versions(f"name='{self.name}'")
                         if mv.current_stage == PRODUCTION_STAGE]
        except VersionNotFound:
            return None
        if not found:
            return None
        newest = max(found, key=lambda mv: int(mv.version))
        return self._info(newest, with_metrics=with_metrics)

    # ---------------------------------------------------------------- writing
    def _set_tags(self, version: str, tags: dict[str, str | None]) -> dict[str, str | None]:
        """Set (or delete, for None) tags; return the previous values so a caller can undo."""
        current = self.get_version(version, with_metrics=False).tags
        before = {key: current.get(key) for key in tags}
        with self._call(f"tags of v{version}"):
            for key, value in tags.items():
                if value is None:
                    if key in current:
                        self.client.delete_model_version_tag(self.name, version, key)
                else:
                    self.client.set_model_version_tag(self.name, version, key, value)
        return before

    def _restore_tags(self, version: str, before: dict[str, str | None]) -> None:
        """Undo ``_set_tags`` after production could not be moved. The caller re-raises the first
        error; a failed undo leaves wrong tags on the version, so it is logged for people."""
        try:
            self._set_tags(version, before)
        except RegistryError as exc:
            log.error("could not undo the tags of v%s after production failed to move; check them by hand "
                      "(`driftwatch versions`)", version,
                      extra={"model_name": self.name, "model_version": version, "tags": sorted(before),
                             "error": str(exc)})

    def _move_production(self, version: str) -> None:
        with self._call(f"moving {self.alias if self.mode == 'alias' else PRODUCTION_STAGE} to v{version}"):
            if self.mode == "alias":
                self.client.set_registered_model_alias(self.name, self.alias, version)
            else:
                self.client.transition_model_version_stage(
                    self.name, version, PRODUCTION_STAGE, archive_existing_versions=True
                )

    def version_metrics(self, version: str) -> dict[str, float]:
        """The metrics logged with the version's run; raises when they cannot be read (the quality
        gate must not mistake an unreadable production for one without metrics)."""
        info = self.get_version(version, with_metrics=False)
        if not info.run_id:
            raise RegistryError(f"v{version} has no run, so no metrics")
        with self._call(f"metrics of v{version}"):
            return dict(self.client.get_run(info.run_id).data.metrics)

    def has_reference(self, info: VersionInfo) -> bool:
        if not info.run_id:
            return False
        with self._call(f"reference data of v{info.version}"):
            found = self.client.list_artifacts(info.run_id, REFERENCE_ARTIFACT_PATH)
        return any(Path(f.path).name == "metadata.json" for f in found)

    def input_columns(self, version: str) -> dict[str, str] | None:
        """The version's input signature as column -> type (None without a column signature)."""
        with tempfile.TemporaryDirectory(prefix="driftwatch-signature-") as tmp:
            mlmodel = self._download_mlmodel(version, Path(tmp))
            with self._call(f"signature of v{version}"):
                signature = mlflow.models.Model.load(str(mlmodel)).signature
        inputs = getattr(signature, "inputs", None)
        if inputs is None or not inputs.has_input_names():
            return None
        return {str(spec.name): str(getattr(spec.type, "name", spec.type)) for spec in inputs.inputs}

    def promotion_problems(self, target: VersionInfo, current: VersionInfo | None) -> list[str]:
        """Why ``target`` should not replace ``current``: no reference data, another task, or an input
        signature production's clients cannot use (columns missing, added or retyped)."""
        problems = []
        if not self.has_reference(target):
            problems.append(f"v{target.version} has no reference data, so its drift cannot be watched "
                            "(register it with `driftwatch register`)")
        if current is None:
            return problems
        if target.task and current.task and target.task != current.task:
            problems.append(f"v{target.version} is a {target.task} model, production v{current.version} "
                            f"a {current.task} model")
        wanted, served = self.input_columns(target.version), self.input_columns(current.version)
        if wanted is not None and served is not None:
            missing = [c for c in served if c not in wanted]
            added = [c for c in wanted if c not in served]
            retyped = [f"{c} ({served[c]} -> {wanted[c]})" for c in wanted if c in served and wanted[c] != served[c]]
            for what, names in (("lacks production's input columns", missing),
                                ("needs input columns production's clients do not send", added),
                                ("changes the type of", retyped)):
                if names:
                    problems.append(f"v{target.version} {what} {', '.join(names)}")
        return problems

    def promote(self, version: str, *, actor: str = "cli", reason: str = "",
                force: bool = False) -> PromotionResult:
        """Make ``version`` production, recording the version it replaced. Refuses, unless ``force``,
        quarantined versions (``force`` lifts the quarantine, on the record), versions without
        reference data and versions whose inputs or task do not match production's."""
        target = self.get_version(version, with_metrics=False)
        if target.quarantined and not force:
            raise PromotionRefused(
                f"v{target.version} is quarantined ({target.quarantine_reason or 'no reason recorded'}); "
                "promote it with --force to lift the quarantine"
            )
        current = self.production_version(with_metrics=False)
        if current is not None and current.version == target.version:
            return PromotionResult(version=target.version, previous=current.previous_version, changed=False)
        if not force:
            problems = self.promotion_problems(target, current)
            if problems:
                raise PromotionRefused("; ".join(problems) + "; promote it with --force if this is intended")
        tags: dict[str, str | None] = {
            TAG_PREVIOUS_VERSION: current.version if current else None,
            TAG_PROMOTED_AT: iso_utc(timespec="seconds"),
            TAG_PROMOTED_BY: actor,
            TAG_PROMOTION_REASON: reason or None,
        }
        if target.quarantined:
            tags.update(dict.fromkeys(QUARANTINE_TAGS))
        before = self._set_tags(target.version, tags)
        try:
            self._move_production(target.version)
        except RegistryError:
            self._restore_tags(target.version, before)
            raise
        return PromotionResult(version=target.version, previous=current.version if current else None)

    def rollback(self, *, to: str | None = None, reason: str, actor: str, alertname: str | None = None,
                 expected_current: str | None = None, incident: str | None = None) -> RollbackResult:
        """Move production back to the recorded previous version (or ``to``) and quarantine the
        version it replaces, with who, when, why, which alert and (from the webhook) which incident."""
        current = self.production_version(with_metrics=False)
        if current is None and not self.model_exists():
            raise VersionNotFound(f"model {self.name!r} is not registered; register one with "
                                  "`driftwatch register` (`driftwatch train --promote` for the Iris demo)")
        wanted = to if to is not None else (current.previous_version if current else None)
        known: dict[str, VersionInfo] = {}
        if wanted is not None and current is not None and wanted != current.version:
            with contextlib.suppress(VersionNotFound):
                known[str(wanted)] = self.get_version(str(wanted), with_metrics=False)
        target = choose_rollback_target(current, known, requested=to, expected_current=expected_current)
        assert current is not None  # choose_rollback_target refuses otherwise
        before = self._set_tags(current.version, {
            TAG_QUARANTINED: "true",
            TAG_QUARANTINE_REASON: reason or "rolled back",
            TAG_QUARANTINED_AT: iso_utc(timespec="seconds"),
            TAG_QUARANTINED_BY: actor,
            TAG_QUARANTINE_ALERT: alertname,
            TAG_ROLLED_BACK_TO: target.version,
            TAG_QUARANTINE_INCIDENT: incident,
        })
        try:
            self._move_production(target.version)
        except RegistryError:
            self._restore_tags(current.version, before)
            raise
        return RollbackResult(from_version=current.version, to_version=target.version)

    # ---------------------------------------------------------------- artifacts
    def download_model(self, version: str, dst: Path) -> Path:
        """Copy the version's MLflow model folder (with ``MLmodel``) to ``dst`` and return it."""
        dst.mkdir(parents=True, exist_ok=True)
        with self._call(f"downloading model v{version}"):
            uri = self.client.get_model_version_download_uri(self.name, str(version))
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(dst), tracking_uri=self.tracking_uri
            )
        local = Path(path)
        if not (local / "MLmodel").is_file():
            candidates = list(local.rglob("MLmodel"))
            if not candidates:
                raise RegistryError(f"model v{version} has no MLmodel file at {uri}")
            local = candidates[0].parent
        return local

    def _download_mlmodel(self, version: str, dst: Path) -> Path:
        """Only the version's ``MLmodel`` file (the signature lives there): the promote guards read two
        signatures per promotion, and the whole model folder can be large. A model whose ``MLmodel`` is
        not at the root of its download URI is downloaded whole."""
        with self._call(f"downloading the MLmodel file of v{version}"):
            uri = self.client.get_model_version_download_uri(self.name, str(version))
            try:
                return Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{uri.rstrip('/')}/MLmodel", dst_path=str(dst), tracking_uri=self.tracking_uri))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        return self.download_model(version, dst / "model") / "MLmodel"

    def download_reference(self, version: str, dst: Path) -> Path:
        """Copy the version's reference data folder (see ``model_registry.reference``) to ``dst``."""
        info = self.get_version(version, with_metrics=False)
        if not info.run_id:
            raise RegistryError(f"v{version} has no run, so no reference data; register it with `driftwatch register`")
        dst.mkdir(parents=True, exist_ok=True)
        with self._call(f"downloading reference data of v{version}"):
            path = mlflow.artifacts.download_artifacts(
                run_id=info.run_id, artifact_path=REFERENCE_ARTIFACT_PATH, dst_path=str(dst),
                tracking_uri=self.tracking_uri,
            )
        return Path(path)

    def check_loadable(self, version: str) -> None:
        """Raise ``RegistryError`` unless the version downloads and loads as a pyfunc model."""
        with tempfile.TemporaryDirectory(prefix="driftwatch-check-") as tmp:
            local = self.download_model(version, Path(tmp))
            try:
                mlflow.pyfunc.load_model(str(local))
            except Exception as exc:
                raise RegistryError(f"model v{version} does not load: {type(exc).__name__}: {exc}") from exc

    def experiment_id(self) -> str:
        """The experiment training runs go to; embedded registries keep artifacts in DRIFTWATCH_HOME."""
        name = self.settings.experiment_name
        with self._call(f"experiment {name!r}"):
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return str(found.experiment_id)
            location: Any = self.settings.artifact_root.as_uri() if self.settings.is_embedded else None
            return str(self.client.create_experiment(name, artifact_location=location))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
