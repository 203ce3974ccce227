"""driftwatch/redact.py: credentials never shown, whatever text carries them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from driftwatch.logs import JsonFormatter
from driftwatch.redact import MASK, redact, redact_uri
from model_registry.errors import RegistryUnavailable, RollbackRefused


@pytest.mark.parametrize(("text", "secret"), [
    ("postgresql://mlflow:pa55w0rd@db.internal:5432/mlflow", "pa55w0rd"),
    ("registry http://alice:s3cr%40t@mlflow:5000/api failed", "s3cr%40t"),
    ("postgresql+psycopg2://u:p%2Fx%3Ay@h/db", "p%2Fx%3Ay"),
    ("s3://AKIDEXAMPLE:wJalrXUtnFEMI@bucket/key", "wJalrXUtnFEMI"),
    ("host=db user=u password=hunter22 dbname=x", "hunter22"),
    ('{"aws_secret_access_key": "wJalrXUtnFEMIK7MDENG"}', "wJalrXUtnFEMIK7MDENG"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENG python", "wJalrXUtnFEMIK7MDENG"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2026&X-Amz-Signature=abcdef0123",
     "abcdef0123"),
    ("Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261130/us-east-1/s3/aws4_request",
     "AKIAIOSFODNN7EXAMPLE"),
    ("Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop1234"),
])
def test_credentials_are_masked(text: str, secret: str) -> None:
    shown = redact(text)
    assert secret not in shown
    assert MASK in shown


def test_text_without_credentials_is_unchanged() -> None:
    for text in ("http://127.0.0.1:5000/api/2.0/mlflow", "sqlite:////tmp/x/mlflow.db", "v2 quarantined: HighErrorRate",
                 '{"token_file": "/run/secrets/token", "deliveries": 2}', "s3://bucket/path/model.pkl", ""):
        assert redact(text) == text


def test_secrets_from_the_environment_and_secret_files_are_masked_anywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-held-token-value\n")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecretvalue123")
    monkeypatch.setenv("DRIFTWATCH_WEBHOOK_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("DRIFTWATCH_WEBHOOK_STORE", "postgresql://dw:uri-password-9@127.0.0.1:5432/dw")
    text = "boto said envsecretvalue123 / file-held-token-value / the password is uri-password-9 here"
    shown = redact(text)
    for secret in ("envsecretvalue123", "file-held-token-value", "uri-password-9"):
        assert secret not in shown


def test_a_uri_for_display_drops_user_and_password() -> None:
    shown = redact_uri("https://alice:s3cret@mlflow.example:5000/")
    assert shown == "https://***@mlflow.example:5000/"


def test_registry_errors_never_carry_the_password() -> None:
    error = RegistryUnavailable("the registry at http://bob:topsecret1@mlflow:5000 cannot be reached")
    assert "topsecret1" not in str(error)
    refused = RollbackRefused("no_previous", "postgresql://u:topsecret2@db/x refused")
    assert "topsecret2" not in str(refused) and refused.code == "no_previous"


def test_every_log_line_is_redacted() -> None:
    record = logging.LogRecord("serving", logging.ERROR, __file__, 1, "cannot reach %s", ("http://u:logpass99@h:1",),
                               None)
    record.uri = "postgresql://u:extrapass77@db/x"
    try:
        raise ConnectionError("connect to http://u:tracepass55@h failed")
    except ConnectionError:
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    for secret in ("logpass99", "extrapass77", "tracepass55"):
        assert secret not in line
    assert json.loads(line)["logger"] == "serving"
