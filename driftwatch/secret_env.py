"""``python -m driftwatch.secret_env COMMAND ...``: run COMMAND with credentials read from secret files.

For programs that take credentials only from environment variables (``mlflow server``: libpq's
``PGPASSWORD``, boto3's ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``): for each NAME below,
``NAME_FILE=/run/secrets/...`` sets NAME to that file's content (trailing newline dropped) just
before ``exec``. The values never appear in a compose file, a command line or ``docker inspect``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NAMES = ("PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def environment_from_files(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with every ``NAME_FILE`` of NAMES read into NAME (and the ``_FILE`` kept)."""
    out = dict(environ)
    for name in NAMES:
        path = environ.get(f"{name}_FILE")
        if path:
            out[name] = Path(path).read_text().rstrip("\r\n")
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m driftwatch.secret_env COMMAND [ARG ...]", file=sys.stderr)
        raise SystemExit(2)
    try:
        env = environment_from_files(dict(os.environ))
    except OSError as exc:
        print(f"driftwatch.secret_env: cannot read a secret file: {exc.filename}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
    os.execvpe(args[0], args, env)


if __name__ == "__main__":
    main()
