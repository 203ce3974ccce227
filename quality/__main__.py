"""``python -m quality``: read the environment, build the app, serve it with uvicorn."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from driftwatch.logs import configure_logging
from quality.app import create_app
from quality.settings import QualitySettings


def main() -> None:
    try:
        settings = QualitySettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        print(f"quality service: invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging("INFO")
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
