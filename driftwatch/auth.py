"""Bearer tokens on HTTP requests: one parser and one constant-time comparison for every service."""

from __future__ import annotations

import hmac


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value; None for any other form."""
    scheme, _, value = (authorization or "").partition(" ")
    token = value.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def bearer_matches(authorization: str | None, expected: str | bytes) -> bool:
    """True when the header carries ``expected``. compare_digest: the time taken does not tell how
    much of a guess was right."""
    given = bearer_token(authorization)
    if given is None:
        return False
    want = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(given.encode(), want)
