"""Closed prediction-log segments in S3: how serving names them and how the drift exporter picks them.

When serving replicas do not share a disk, each one uploads its closed log segments (a file the
writer has rotated away, by size or by age) to ``s3://BUCKET/PREFIX/<model name>/``, and the drift
exporter reads the newest ones across replicas. The object name carries what the exporter needs to
choose without downloading anything:

    <last row, epoch ms, 13 digits>-<first row, epoch ms>-<rows>-<instance>.jsonl

Sorted by name, segments are sorted by their newest row, so "every segment with a row newer than
the window's age limit" is one listing that starts after the limit (``StartAfter``), whatever the
number of replicas or of older segments in the bucket.

The newest ``max_rows`` rows across all replicas are in the segments :func:`select_newest` returns,
exactly: walking segments newest-last-row first, a segment can be left out (with every older one)
once the segments already chosen that lie entirely after its last row hold ``max_rows`` rows.

This module is shared by serving's log writer process (which must start fast: boto3 is imported only
when a client is made) and the drift exporter. Endpoint and keys are boto3's own environment
(``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` or a credentials file,
``AWS_DEFAULT_REGION``), as :mod:`driftwatch.objectstore` sets it for the local S3 server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SEGMENT_NAME = re.compile(r"^(?P<last>\d{13})-(?P<first>\d{13})-(?P<rows>\d+)-(?P<instance>[^/]+)\.jsonl$")


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix``: where every model's segments live (one folder per model below it)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?", url.strip())
        if match is None:
            raise ValueError(f"{url!r} is not an S3 location such as s3://bucket/prediction-logs")
        return cls(match.group(1), (match.group(2) or "").strip("/"))

    def model_prefix(self, model_name: str) -> str:
        if "/" in model_name or not model_name:
            raise ValueError(f"model name {model_name!r} cannot name an S3 folder")
        return f"{self.prefix}/{model_name}/" if self.prefix else f"{model_name}/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


@dataclass(frozen=True)
class Segment:
    """One closed segment of one serving process's prediction log."""

    last_ms: int
    first_ms: int
    rows: int
    instance: str

    @property
    def name(self) -> str:
        return f"{self.last_ms:013d}-{self.first_ms:013d}-{self.rows}-{self.instance}.jsonl"

    @classmethod
    def parse(cls, name: str) -> Segment | None:
        match = SEGMENT_NAME.match(name)
        if match is None:
            return None
        return cls(int(match["last"]), int(match["first"]), int(match["rows"]), match["instance"])


def start_after(model_prefix: str, cutoff_ms: int | None) -> str:
    """The listing start that skips every segment whose newest row is older than ``cutoff_ms``."""
    return f"{model_prefix}{max(cutoff_ms - 1, 0):013d}~" if cutoff_ms is not None else ""


def select_newest(segments: Iterable[Segment], max_rows: int) -> list[Segment]:
    """The segments that hold the newest ``max_rows`` rows, newest last row first (see module doc)."""
    ordered = sorted(segments, key=lambda s: (s.last_ms, s.first_ms, s.instance), reverse=True)
    chosen: list[Segment] = []
    for segment in ordered:
        after = sum(c.rows for c in chosen if c.first_ms > segment.last_ms)
        if after >= max_rows:
            break
        chosen.append(segment)
    return chosen


def s3_client() -> Any:
    """A boto3 S3 client from the environment (path-style addressing: works with local servers)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3},
                                            connect_timeout=5, read_timeout=30))
