#!/usr/bin/env python3
"""Container health check: exit 0 when URL answers 2xx within the timeout, 1 otherwise.

The image is python:3.11-slim, which has neither curl nor wget; this uses the standard library
only, so it works in any Python image. Usage: ``driftwatch-healthcheck URL [--timeout SECONDS]``.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request


def check(url: str, timeout: float) -> tuple[bool, str]:
    """(healthy, one line saying why) for one GET of ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url} unreachable: {reason}"
    if 200 <= status < 300:
        return True, f"{url} answered HTTP {status}"
    return False, f"{url} answered HTTP {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    healthy, why = check(args.url, args.timeout)
    print(why, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
