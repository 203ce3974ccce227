"""``python -m quality``: read the environment, build the app, serve it with uvicorn."""

from __future__ import annotations

from driftwatch.service import load_settings, run_service
from quality.app import create_app
from quality.settings import QualitySettings


def main() -> None:
    settings = load_settings(QualitySettings, "quality service")
    run_service(create_app(settings), host=settings.host, port=settings.port, limits=settings.server_limits())


if __name__ == "__main__":
    main()
