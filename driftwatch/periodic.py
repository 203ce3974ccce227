"""A job that runs now and then every N seconds in a background thread (the drift exporter's checks,
the quality service's evaluations): one copy of the scheduling rules both need, of the FastAPI
lifespan that starts the job with the app and stops it (waiting for a run in progress) with it,
and of the health verdict built on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler


def start_periodic(job: Callable[[], object], *, seconds: float, job_id: str) -> BackgroundScheduler:
    """Start a scheduler running ``job`` at once and every ``seconds``. max_instances=1: never two
    runs at once; coalesce: a late run runs once, not in a burst. Stop it with ``shutdown(wait=True)``."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(job, "interval", id=job_id, seconds=seconds, next_run_time=datetime.now(UTC),
                      max_instances=1, coalesce=True, misfire_grace_time=max(1, int(seconds)))
    scheduler.start()
    return scheduler


def periodic_lifespan(job: Callable[[], object], *, seconds: float, job_id: str, enabled: bool,
                      started: Callable[[], None] | None = None,
                      stopped: Callable[[], None] | None = None) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A FastAPI lifespan: with ``enabled``, ``start_periodic`` when the app starts, then ``started()``
    (the service's start-up log line); at the end the scheduler is shut down, waiting for a run in
    progress, then ``stopped()`` (e.g. closing a store). ``app.state.scheduler`` is the scheduler (None
    when not enabled: tests run the job themselves)."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        scheduler = start_periodic(job, seconds=seconds, job_id=job_id) if enabled else None
        if scheduler is not None and started is not None:
            started()
        app.state.scheduler = scheduler
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=True)
            if stopped is not None:
                stopped()

    return lifespan


def scheduler_health(app: Any, *, enabled: bool) -> tuple[bool, bool]:
    """(running, healthy) for /health: healthy while the scheduler runs, or when none was asked for."""
    scheduler = getattr(app.state, "scheduler", None)
    running = bool(scheduler is not None and scheduler.running)
    return running, running or not enabled
