from pathlib import Path

import pytest

from driftwatch.cli import build_parser, format_table, main


def test_every_design_command_exists() -> None:
    parser = build_parser()
    for argv in (["train", "--model", "svm", "--promote", "--fault", "errors=0.5"], ["promote", "3"],
                 ["rollback", "--to", "2", "--reason", "x"], ["versions"], ["serve"], ["drift-exporter"],
                 ["rollback-webhook"], ["up"], ["down"], ["demo"]):
        assert parser.parse_args(argv).command == argv[0]


def test_a_malformed_fault_is_one_line_and_exit_one(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWATCH_HOME", str(tmp_path))
    assert main(["train", "--fault", "latency=slow"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["driftwatch: error: --fault: fault latency='slow': 'slow' is not a number"]


def test_an_invalid_setting_names_the_variable(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWATCH_REGISTRY_MODE", "stages")
    assert main(["versions"]) == 1
    assert "DRIFTWATCH_REGISTRY_MODE" in capsys.readouterr().err


def test_table_columns_line_up() -> None:
    table = format_table([["A", "BB"], ["ccc", "d"]]).splitlines()
    assert table == ["A    BB", "ccc  d"]
