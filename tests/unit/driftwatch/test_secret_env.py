"""driftwatch/secret_env.py: credentials for mlflow server from secret files, not from compose."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftwatch.secret_env import environment_from_files, main


def test_each_file_variable_fills_its_variable(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pg-secret\n")
    (tmp_path / "key").write_text("AKIDLOCAL")
    env = environment_from_files({"PGPASSWORD_FILE": str(tmp_path / "pw"), "AWS_ACCESS_KEY_ID_FILE": str(tmp_path / "key"),
                                  "OTHER_FILE": str(tmp_path / "pw"), "PATH": "/bin"})
    assert env["PGPASSWORD"] == "pg-secret" and env["AWS_ACCESS_KEY_ID"] == "AKIDLOCAL"
    assert "OTHER" not in env and env["PATH"] == "/bin"


def test_a_missing_secret_file_stops_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PGPASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(SystemExit) as stopped:
        main(["true"])
    assert stopped.value.code == 2
    assert "cannot read a secret file" in capsys.readouterr().err
