from datetime import UTC, datetime

import pytest

from model_registry.errors import RollbackRefused
from model_registry.rollback import choose_rollback_target
from model_registry.versions import TAG_PREVIOUS_VERSION, TAG_QUARANTINE_REASON, TAG_QUARANTINED, VersionInfo


def version(v: str, **tags: str) -> VersionInfo:
    return VersionInfo(name="m", version=v, run_id="r", source="s", created_at=datetime(2026, 1, 1, tzinfo=UTC),
                       tags=dict(tags))


CURRENT = version("3", **{TAG_PREVIOUS_VERSION: "2"})
GOOD = version("2")
BAD = version("1", **{TAG_QUARANTINED: "true", TAG_QUARANTINE_REASON: "HighErrorRate"})


def test_rollback_goes_to_the_recorded_previous_version() -> None:
    assert choose_rollback_target(CURRENT, {"2": GOOD}).version == "2"


def test_an_explicit_target_wins_over_the_recorded_one() -> None:
    assert choose_rollback_target(CURRENT, {"2": GOOD, "4": version("4")}, requested="4").version == "4"


@pytest.mark.parametrize(
    ("current", "known", "requested", "expected_current", "code"),
    [
        pytest.param(None, {}, None, None, "no_production", id="nothing-in-production"),
        pytest.param(version("3"), {}, None, None, "no_previous", id="no-recorded-previous"),
        pytest.param(CURRENT, {}, None, None, "target_missing", id="previous-was-deleted"),
        pytest.param(CURRENT, {"1": BAD}, "1", None, "target_quarantined", id="quarantined-target"),
        pytest.param(CURRENT, {"2": GOOD}, "3", None, "same_version", id="target-is-current"),
        pytest.param(CURRENT, {"2": GOOD}, None, "4", "production_changed", id="production-moved-meanwhile"),
    ],
)
def test_rollback_refuses_rather_than_guess(current: VersionInfo | None, known: dict[str, VersionInfo],
                                            requested: str | None, expected_current: str | None,
                                            code: str) -> None:
    with pytest.raises(RollbackRefused) as info:
        choose_rollback_target(current, known, requested=requested, expected_current=expected_current)
    assert info.value.code == code
    assert str(info.value)


def test_quarantine_reason_is_in_the_refusal() -> None:
    with pytest.raises(RollbackRefused, match="HighErrorRate"):
        choose_rollback_target(CURRENT, {"1": BAD}, requested="1")
