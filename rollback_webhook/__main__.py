"""``python -m rollback_webhook``: read the environment, build the app, serve it with uvicorn."""

from __future__ import annotations

import importlib
import logging
import threading

from driftwatch.service import load_settings, run_service
from model_registry import ModelRegistry
from model_registry.errors import RegistryError, RegistryUnavailable
from rollback_webhook.app import create_app
from rollback_webhook.settings import WebhookSettings

log = logging.getLogger("rollback_webhook")
# The first rollback's load check imports these and builds MLflow's package map; doing it early
# takes seconds off that rollback (measured in docs/rollback_webhook.md).
WARM_MODULES = ("sklearn", "skops.io", "mlflow.pyfunc", "mlflow.sklearn")


def warm_up(registry: ModelRegistry) -> None:
    """In the background: import the model loaders and load the production version once, so the
    first rollback (usually the only one a process makes) does not pay for them. It also tells
    on-call early when models do not load here (rollbacks would then be declined)."""
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            log.info("warm-up: %s is not installed", name)
    try:
        production = registry.production_version(with_metrics=False)
        if production is None:
            log.info("registry reachable; no version is in production")
            return
        registry.check_loadable(production.version)
    except RegistryUnavailable as exc:
        log.warning("registry not reachable at start-up; alerts that need it are answered 503 until it is",
                    extra={"error": str(exc)})
        return
    except RegistryError as exc:
        log.warning("the production version does not load here; rollbacks to versions that do not load are "
                    "declined", extra={"error": str(exc)})
        return
    log.info("registry reachable; production is v%s and loads", production.version,
             extra={"production_version": production.version})


def main() -> None:
    settings = load_settings(WebhookSettings, "rollback webhook")
    registry = ModelRegistry(settings.registry)
    app = create_app(settings, model_registry=registry)
    if settings.warm_up:
        threading.Thread(target=warm_up, args=(registry,), name="warm-up", daemon=True).start()
    log.info("rollback webhook for %s on %s:%d; decisions in %s", settings.model_name, settings.host, settings.port,
             settings.store_description(), extra={"policy": settings.policy().describe(),
                                                  "serving_urls": settings.serving_url_list,
                                                  "serving_urls_resolve_all": settings.serving_urls_resolve_all})
    run_service(app, host=settings.host, port=settings.port, limits=settings.server_limits())


if __name__ == "__main__":
    main()
