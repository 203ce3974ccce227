"""``python -m serving``: read the environment, build the app, run it under uvicorn (one process)."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from driftwatch.logs import configure_logging
from serving.app import create_app
from serving.settings import ServingSettings


def main() -> None:
    try:
        settings = ServingSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        print(f"serving: invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    app = create_app(settings)
    logging.getLogger("serving").info(
        "starting on %s:%d for %s", settings.host, settings.port, settings.production_uri,
        extra={"event": "start"})
    # One process: Prometheus counters live in it (several workers would each count apart; see
    # docs/serving.md). log_config=None keeps the JSON logging configured above.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=settings.access_log,
                timeout_graceful_shutdown=30, lifespan="on")


if __name__ == "__main__":
    main()
