import pytest

from monitoring.durations import format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("15s", 15), ("5m", 300), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("2d", 172800), ("0s", 0),
])
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5 m", "1.5m", "5mm", "-5s"])
def test_malformed_durations_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (1, "1s"), (10, "10s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (28800, "8h"), (0.25, "250ms"),
    (3661.5, "1h1m1s500ms"),
])
def test_durations_are_written_shortest_first(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_a_negative_duration_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)
