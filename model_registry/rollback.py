"""Which version a rollback goes back to. Pure function of the registry state, no I/O."""

from __future__ import annotations

from collections.abc import Mapping

from model_registry.errors import RollbackRefused
from model_registry.versions import VersionInfo


def choose_rollback_target(current: VersionInfo | None, versions: Mapping[str, VersionInfo],
                           *, requested: str | None = None,
                           expected_current: str | None = None) -> VersionInfo:
    """The version production should go back to: ``requested`` if given, otherwise the version that
    ``current`` replaced. Refuses (``RollbackRefused`` with a code) rather than guess."""
    if current is None:
        raise RollbackRefused("no_production", "no version is in production; nothing to roll back")
    if expected_current is not None and current.version != expected_current:
        raise RollbackRefused(
            "production_changed",
            f"production is v{current.version}, not v{expected_current}: it changed already",
        )
    target_version = requested if requested is not None else current.previous_version
    if target_version is None:
        raise RollbackRefused(
            "no_previous",
            f"v{current.version} has no recorded previous version; use --to VERSION to choose one",
        )
    if target_version == current.version:
        raise RollbackRefused("same_version", f"v{target_version} is already in production")
    target = versions.get(target_version)
    if target is None:
        raise RollbackRefused("target_missing", f"version {target_version} does not exist")
    if target.quarantined:
        raise RollbackRefused(
            "target_quarantined",
            f"v{target_version} is quarantined ({target.quarantine_reason or 'no reason recorded'}); "
            "choose another with --to VERSION",
        )
    return target
