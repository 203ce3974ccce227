"""``python -m serving``: read the environment, build the app, run it under uvicorn (one process)."""

from __future__ import annotations

import logging

from driftwatch.service import load_settings, run_service
from serving.app import create_app
from serving.settings import ServingSettings


def main() -> None:
    settings = load_settings(ServingSettings, "serving")
    app = create_app(settings)
    logging.getLogger("serving").info(
        "starting on %s:%d for %s", settings.host, settings.port, settings.production_uri,
        extra={"event": "start"})
    # One process: Prometheus counters live in it (several workers would each count apart; see
    # docs/serving.md).
    run_service(app, host=settings.host, port=settings.port, limits=settings.server_limits(),
                access_log=settings.access_log)


if __name__ == "__main__":
    main()
