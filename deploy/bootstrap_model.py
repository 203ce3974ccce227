#!/usr/bin/env python3
"""The compose stack's one-shot trainer: train and promote a first model when none is in production.

`docker compose up` runs it at every start, but only a registry with nothing in production gets a
new version; a restart never replaces (or silently re-promotes) what is serving. To train again on
purpose: ``docker compose run --rm trainer driftwatch train --promote``.

The registry may still be starting (the tracking server's health endpoint answers before its
database is migrated), so an unavailable registry is retried for a while before giving up.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol


class ProductionLookup(Protocol):
    """The one registry question this script asks (model_registry.ModelRegistry answers it)."""

    def production_version(self, *, with_metrics: bool = ...) -> object | None: ...


def bootstrap(registry: ProductionLookup, train: Callable[[], int], *, model_name: str,
              unavailable: tuple[type[BaseException], ...] = (), wait_seconds: float = 60.0,
              sleep: Callable[[float], None] = time.sleep, say: Callable[[str], None] = print) -> int:
    """Exit status: 0 when production already has a version, else what ``train`` returns."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            current = registry.production_version(with_metrics=False)
            break
        except unavailable as exc:
            if time.monotonic() >= deadline:
                say(f"registry still unavailable after {wait_seconds:.0f}s: {exc}")
                return 1
            sleep(2.0)
    if current is not None:
        say(f"{model_name} v{getattr(current, 'version', '?')} is in production; nothing to train")
        return 0
    say(f"{model_name} has no production version yet; training and promoting a first one")
    return train()


def main() -> int:
    from driftwatch.cli import main as cli_main
    from model_registry import ModelRegistry, RegistrySettings, RegistryUnavailable

    settings = RegistrySettings()
    return bootstrap(ModelRegistry(settings), lambda: cli_main(["train", "--promote"]),
                     model_name=settings.model_name, unavailable=(RegistryUnavailable,))


if __name__ == "__main__":
    sys.exit(main())
