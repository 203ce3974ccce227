"""driftwatch.logsegments: segment names, the S3 location, and choosing the window's segments exactly."""

from __future__ import annotations

import random

import pytest

from driftwatch.logsegments import S3Location, Segment, select_newest, start_after


def test_a_segment_name_sorts_by_its_newest_row_and_parses_back() -> None:
    segment = Segment(last_ms=1_767_268_800_123, first_ms=1_767_268_700_000, rows=42, instance="serving-1-x")
    assert segment.name == "1767268800123-1767268700000-42-serving-1-x.jsonl"
    assert Segment.parse(segment.name) == segment
    assert Segment.parse("predictions-a.jsonl") is None and Segment.parse("1-2-3-a.jsonl") is None
    older = Segment(last_ms=999_999_999_999, first_ms=0, rows=1, instance="z")
    assert older.name < segment.name


def test_start_after_skips_exactly_the_segments_older_than_the_cutoff() -> None:
    prefix = "logs/m/"
    names = [prefix + Segment(ms, ms - 5, 1, "a").name for ms in (1_000_000_000_000 - 1, 1_000_000_000_000,
                                                                   1_000_000_000_001)]
    start = start_after(prefix, 1_000_000_000_000)
    assert [n > start for n in names] == [False, True, True]
    assert start_after(prefix, None) == ""


@pytest.mark.parametrize(("url", "bucket", "prefix"), [
    ("s3://logs", "logs", ""), ("s3://logs/predictions/", "logs", "predictions"), ("s3://a.b-c/x/y", "a.b-c", "x/y")])
def test_s3_locations(url: str, bucket: str, prefix: str) -> None:
    location = S3Location.parse(url)
    assert (location.bucket, location.prefix) == (bucket, prefix)
    assert location.model_prefix("m") == (f"{prefix}/m/" if prefix else "m/")


@pytest.mark.parametrize("url", ["http://logs/x", "s3://", "logs/x", "s3://UPPER/x"])
def test_what_is_not_an_s3_location_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="is not an S3 location"):
        S3Location.parse(url)


@pytest.mark.parametrize("seed", range(20))
def test_the_chosen_segments_hold_exactly_the_newest_rows(seed: int) -> None:
    """Against brute force: every row of every segment, the newest max_rows by time."""
    rng = random.Random(seed)
    rows: dict[int, str] = {}  # timestamp -> segment name; distinct timestamps
    segments: list[Segment] = []
    clock = iter(rng.sample(range(1, 100_000), 3000))
    for instance in range(rng.randint(1, 8)):
        stamps = sorted(next(clock) for _ in range(rng.randint(5, 300)))
        cuts = sorted(rng.sample(range(1, len(stamps)), min(len(stamps) - 1, rng.randint(0, 6))))
        for part in (stamps[a:b] for a, b in zip([0, *cuts], [*cuts, len(stamps)], strict=True)):
            segment = Segment(part[-1], part[0], len(part), f"r{instance}")
            segments.append(segment)
            rows.update({ts: segment.name for ts in part})
    max_rows = rng.randint(1, len(rows))
    newest = sorted(rows, reverse=True)[:max_rows]
    chosen = {s.name for s in select_newest(segments, max_rows)}
    assert {rows[ts] for ts in newest} <= chosen
