"""Uploads closed prediction-log segments to S3 from the log writer process (a thread there).

The writer hard-links each segment it closes into ``<log folder>/.segments-<instance>/`` under its
object name (see ``driftwatch.logsegments``); this thread uploads what is there to
``s3://BUCKET/PREFIX/<model name>/<name>`` and removes the link. The folder is the queue: a segment
survives an S3 outage, a crash or a restart of the writer and goes up when S3 answers again (the
next writer of the same instance name picks the folder up). While S3 is down the queue is kept to
``max_pending`` segments; older ones are deleted locally with a log line (their rows stay in the
local rotated files while those last). Serving exports the queue's length as
``model_prediction_log_segments_pending``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driftwatch.logsegments import S3Location, Segment, s3_client

MAX_PENDING = 1000
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


def outbox_folder(log_dir: Path, instance: str) -> Path:
    return log_dir / f".segments-{instance}"


def pending_segments(log_dir: Path, instance: str) -> int:
    """Closed segments not uploaded yet (0 without a queue folder)."""
    try:
        return sum(1 for name in os.listdir(outbox_folder(log_dir, instance)) if Segment.parse(name))
    except FileNotFoundError:
        return 0


class SegmentShipper:
    def __init__(self, outbox: Path, location: S3Location, model_name: str, *,
                 say: Callable[[str], None], max_pending: int = MAX_PENDING,
                 client_factory: Callable[[], Any] = s3_client) -> None:
        outbox.mkdir(parents=True, exist_ok=True)
        self.outbox = outbox
        self.location = location
        self.key_prefix = location.model_prefix(model_name)
        self.say = say
        self.max_pending = max_pending
        self.client_factory = client_factory
        self._client: Any = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self.uploaded = 0

    @classmethod
    def for_log(cls, log_dir: Path, instance: str, url: str, model_name: str, *,
                say: Callable[[str], None]) -> SegmentShipper:
        return cls(outbox_folder(log_dir, instance), S3Location.parse(url), model_name, say=say)

    # ------------------------------------------------------------------ writer thread
    def add(self, path: Path, segment: Segment) -> None:
        """Queue a closed segment (called before the writer renames it away)."""
        target = self.outbox / segment.name
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        os.link(path, target)
        self._prune()
        self._wake.set()

    def _prune(self) -> None:
        queued = self.queued()
        for old in queued[:max(0, len(queued) - self.max_pending)]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
            self.say(f"prediction log upload: {len(queued)} segments waiting, over {self.max_pending}: "
                     f"{old.name} deleted from the upload queue")

    def queued(self) -> list[Path]:
        """Queued segments, oldest last row first."""
        return sorted((p for p in self.outbox.iterdir() if Segment.parse(p.name)), key=lambda p: p.name)

    # ------------------------------------------------------------------ upload thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="segment-shipper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            self._wake.wait(delay if delay else 5.0)
            self._wake.clear()
            if self.ship():
                self._failures = 0
                delay = 0.0
            else:
                delay = RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS) - 1)]
                self._failures += 1

    def ship(self) -> bool:
        """Upload every queued segment, oldest first; False when S3 refused one (it stays queued)."""
        for path in self.queued():
            key = self.key_prefix + path.name
            try:
                if self._client is None:
                    self._client = self.client_factory()
                self._client.upload_file(str(path), self.location.bucket, key)
            except FileNotFoundError:
                continue  # pruned meanwhile
            except Exception as exc:  # boto3 and botocore raise many types; the segment stays queued
                self.say(f"prediction log upload to {self.location} failed for {path.name}: "
                         f"{type(exc).__name__}: {exc}")
                return False
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self.uploaded += 1
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and try to upload what is left for up to ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self.queued() and time.monotonic() < deadline:
            if not self.ship():
                time.sleep(1.0)
        if self.queued():
            self.say(f"prediction log upload: {len(self.queued())} segments left in {self.outbox} "
                     "for the next start")
