"""The policy: safe defaults, per-alert rules, and the policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_webhook.policy import AlertPolicy, PolicyFileError, RollbackPolicy, load_alert_policies


def test_defaults_roll_back_only_on_error_rate_and_latency() -> None:
    policy = RollbackPolicy()
    assert policy.rule_for("HighErrorRate").action == "rollback"
    assert policy.rule_for("HighLatency").action == "rollback"
    for name in ("FeatureDrift", "PredictionDrift", "InstanceDown", "ModelNotLoaded", "DriftCheckStale", ""):
        rule = policy.rule_for(name)
        assert rule.action == "notify" and not rule.named, name
    assert (policy.cooldown_seconds, policy.max_rollbacks, policy.dry_run) == (1800.0, 3, False)


def test_per_alert_overrides_fall_back_to_global_values() -> None:
    policy = RollbackPolicy(alerts={"A": AlertPolicy(action="rollback", cooldown_seconds=60),
                                    "B": AlertPolicy(action="rollback", dry_run=True)},
                            cooldown_seconds=900, dry_run=False)
    a, b = policy.rule_for("A"), policy.rule_for("B")
    assert (a.cooldown_seconds, a.dry_run) == (60, False)
    assert (b.cooldown_seconds, b.dry_run) == (900, True)


def test_policy_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("alerts:\n  HighLatency: {action: notify}\n  CanaryErrors: {action: rollback, dry_run: true}\n")
    entries = load_alert_policies(path)
    assert entries == {"HighLatency": AlertPolicy(action="notify"),
                       "CanaryErrors": AlertPolicy(action="rollback", dry_run=True)}


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("alerts: [a, b]\n", "must be a mapping", id="alerts-not-a-mapping"),
    pytest.param("cooldown: 5\n", "must be a mapping with one key", id="unknown-top-level-key"),
    pytest.param("alerts:\n  X: {action: undo}\n", "alert 'X': action", id="unknown-action"),
    pytest.param("alerts:\n  X: {action: rollback, cooldown: 5}\n", "alert 'X'", id="misspelt-field"),
    pytest.param("alerts:\n  X: {action: rollback, cooldown_seconds: -1}\n", "cooldown_seconds",
                 id="negative-cooldown"),
    pytest.param("alerts: {X: [\n", "not valid YAML", id="broken-yaml"),
])
def test_policy_file_problems_name_the_file_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(text)
    with pytest.raises(PolicyFileError, match=message) as raised:
        load_alert_policies(path)
    assert str(path) in str(raised.value)
