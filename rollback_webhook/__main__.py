"""``python -m rollback_webhook``: read the environment, build the app, serve it with uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from rollback_webhook.app import create_app
from rollback_webhook.logs import configure_logging
from rollback_webhook.settings import WebhookSettings

log = logging.getLogger("rollback_webhook")


def main() -> None:
    try:
        settings = WebhookSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        print(f"rollback webhook: invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    app = create_app(settings)
    log.info("rollback webhook for %s on %s:%d; decisions in %s", settings.model_name, settings.host, settings.port,
             settings.resolved_store_path, extra={"policy": settings.policy().describe(),
                                                  "serving_urls": settings.serving_url_list})
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
