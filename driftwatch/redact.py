"""Credentials never shown: the one redaction helper for HTTP answers, log lines and error text.

``redact(text)`` hides
- the password of ``user:password@`` in any URI (``postgresql://``, ``http://``, ``s3://``, ...);
- values after secret-looking keys: ``password=…``, ``"aws_secret_access_key": "…"``, ``token: …``;
- S3 request signatures and credentials in presigned URLs and Authorization headers;
- the value of every secret this process was given: environment variables whose names say they
  are secrets (``AWS_SECRET_ACCESS_KEY``, ``*_PASSWORD``, ``*_TOKEN``, ``*_SECRET*``; ``*_FILE``
  variables are read) and passwords found in URI-valued variables, wherever they appear.
Used by driftwatch/logs.py (every log line), the registry errors (model_registry/errors.py) and
each service's error text in its answers.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
MIN_SECRET_CHARS = 6

# scheme://user:password@  (the password may be empty; it ends at the last '@' before whitespace)
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/?#@\"'<>]*):(?P<pw>[^\s@\"'<>]*)@")
# key=value / "key": "value" / key: value, for keys that name a secret
_KEYED = re.compile(
    r"(?P<key>\b(?:[A-Za-z0-9_]*(?:password|passwd|secret_access_key|secret_key|session_token|secret|token))"
    r"[\"']?\s*[=:]\s*[\"']?)(?P<value>[^\s\"'&,;}]+)", re.IGNORECASE)
# presigned S3 URLs and SigV4 headers
_SIGNATURE = re.compile(r"(?P<key>\b(?:X-Amz-Signature|Signature|X-Amz-Security-Token)=)(?P<value>[^\s&\"',]+)",
                        re.IGNORECASE)
_CREDENTIAL = re.compile(r"(?P<key>\b(?:X-Amz-Credential|Credential)=)(?P<value>[^\s&\"',/%]+)", re.IGNORECASE)
_BEARER = re.compile(r"(?P<key>\bBearer\s+)(?P<value>[A-Za-z0-9._~+/=\-]+)", re.IGNORECASE)
_AKID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")

_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|ACCESS_KEY_ID|API_KEY)", re.IGNORECASE)


def _env_secrets(environ: dict[str, str]) -> tuple[str, ...]:
    found: set[str] = set()
    for name, value in environ.items():
        if not value:
            continue
        if name.endswith("_FILE") and _SECRET_NAME.search(name[:-5]):
            try:
                path = Path(value)
                if path.is_file() and path.stat().st_size < 4096:
                    value = path.read_text(errors="replace").strip()
                else:
                    continue
            except OSError:
                continue
            found.add(value)
        elif _SECRET_NAME.search(name):
            found.add(value.strip())
        for match in _USERINFO.finditer(value):
            password = match.group("pw")
            found.update({password, unquote(password)})
    # Longest first, so a secret that contains another is masked whole.
    return tuple(sorted((s for s in found if len(s) >= MIN_SECRET_CHARS), key=len, reverse=True))


@lru_cache(maxsize=1)
def _known_secrets_cached(key: int) -> tuple[str, ...]:
    return _env_secrets(dict(os.environ))


def known_secrets() -> tuple[str, ...]:
    """Secret values from this process's environment (cached; recomputed when the environment changes)."""
    return _known_secrets_cached(hash(frozenset(os.environ.items())))


def redact(text: str, extra: tuple[str, ...] = ()) -> str:
    """``text`` with every credential replaced by ``***`` (see the module docstring)."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@" if m.group("pw") else m.group(0), text)
    text = _KEYED.sub(lambda m: m.group("key") + MASK, text)
    text = _SIGNATURE.sub(lambda m: m.group("key") + MASK, text)
    text = _CREDENTIAL.sub(lambda m: m.group("key") + MASK, text)
    text = _BEARER.sub(lambda m: m.group("key") + MASK, text)
    text = _AKID.sub(MASK, text)
    for secret in (*extra, *known_secrets()):
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_uri(uri: str) -> str:
    """A URI for display: user and password dropped (``scheme://***@host:port/path``), the rest redacted."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        uri = urlunsplit(parts._replace(netloc=f"{MASK}@{host}{port}"))
    return redact(uri)
