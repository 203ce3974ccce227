"""``python -m drift_exporter``: read the environment, build the app, serve it with uvicorn."""

from __future__ import annotations

from drift_exporter.app import create_app
from drift_exporter.settings import DriftExporterSettings
from driftwatch.service import load_settings, run_service


def main() -> None:
    settings = load_settings(DriftExporterSettings, "drift exporter")
    run_service(create_app(settings), host=settings.host, port=settings.port, limits=settings.server_limits())


if __name__ == "__main__":
    main()
