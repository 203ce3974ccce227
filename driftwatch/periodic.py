"""A job that runs now and then every N seconds in a background thread (the drift exporter's checks,
the quality service's evaluations): one copy of the scheduling rules both need."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler


def start_periodic(job: Callable[[], object], *, seconds: float, job_id: str) -> BackgroundScheduler:
    """Start a scheduler running ``job`` at once and every ``seconds``. max_instances=1: never two
    runs at once; coalesce: a late run runs once, not in a burst. Stop it with ``shutdown(wait=True)``."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(job, "interval", id=job_id, seconds=seconds, next_run_time=datetime.now(UTC),
                      max_instances=1, coalesce=True, misfire_grace_time=max(1, int(seconds)))
    scheduler.start()
    return scheduler
