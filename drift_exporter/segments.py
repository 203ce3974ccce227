"""The drift window from S3: the newest closed prediction-log segments of every serving replica.

With ``DRIFTWATCH_PREDICTION_LOG_S3_URL`` set, the exporter does not read a local folder: before each
check it lists ``s3://BUCKET/PREFIX/<model name>/`` from the window's age limit on (one listing,
whatever the number of replicas), picks the segments that hold the newest ``window_rows`` rows
(``driftwatch.logsegments.select_newest``: exact, from the object names alone), downloads the ones
it does not have yet into a local cache folder, drops the ones no longer needed, and hands the
reader the chosen files as each replica's chain, newest first. Segments never change once uploaded,
so each one is downloaded once.

The window lags the live traffic by at most the replicas' ``DRIFTWATCH_PREDICTION_LOG_SEGMENT_SECONDS``
(a row reaches S3 when its segment closes) plus one upload plus the check interval.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from drift_exporter.window import LogFile
from driftwatch.logsegments import S3Location, Segment, s3_client, select_newest, start_after

log = logging.getLogger("drift_exporter")


class SegmentSource:
    """Keeps ``cache_dir`` holding the segments of the current window and lists them for the reader."""

    def __init__(self, location: S3Location, model_name: str, cache_dir: Path, *, client: Any = None) -> None:
        self.location = location
        self.prefix = location.model_prefix(model_name)
        self.cache_dir = cache_dir
        self._client = client
        self.downloads = 0
        self.listed = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def list_segments(self, cutoff_ms: int | None) -> list[Segment]:
        """Every segment whose newest row is at or after ``cutoff_ms`` (all of them without a cutoff)."""
        found: list[Segment] = []
        paginator = self.client.get_paginator("list_objects_v2")
        options: dict[str, Any] = {"Bucket": self.location.bucket, "Prefix": self.prefix}
        if cutoff_ms is not None:
            options["StartAfter"] = start_after(self.prefix, cutoff_ms)
        for page in paginator.paginate(**options):
            for item in page.get("Contents", []):
                segment = Segment.parse(item["Key"][len(self.prefix):])
                if segment is not None:
                    found.append(segment)
        self.listed = len(found)
        return found

    def sync(self, *, max_rows: int, max_age_seconds: float | None, now: float) -> list[LogFile]:
        """Download what the window needs; return it as log files (per instance, newest first)."""
        cutoff_ms = int((now - max_age_seconds) * 1000) if max_age_seconds else None
        chosen = select_newest(self.list_segments(cutoff_ms), max_rows)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        wanted = {segment.name for segment in chosen}
        for name in os.listdir(self.cache_dir):
            if name not in wanted:
                with contextlib.suppress(FileNotFoundError):
                    (self.cache_dir / name).unlink()
        files: list[LogFile] = []
        rank: dict[str, int] = {}
        for segment in chosen:  # newest last row first: rotation 0, 1, ... per instance
            path = self.cache_dir / segment.name
            if not path.exists():
                partial = path.with_name(f".{segment.name}.part")
                self.client.download_file(self.location.bucket, self.prefix + segment.name, str(partial))
                partial.replace(path)
                self.downloads += 1
            files.append(LogFile(path, segment.instance, rank.get(segment.instance, 0)))
            rank[segment.instance] = rank.get(segment.instance, 0) + 1
        return files
