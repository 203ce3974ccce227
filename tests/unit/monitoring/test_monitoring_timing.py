"""The demo timing is derived from the production configuration by a scale factor with floors."""

from __future__ import annotations

import pytest

from monitoring.durations import parse_duration
from monitoring.timing import PROFILES, Scaler, TimingProfile, profile

DEMO = PROFILES["demo"]


def demo_scaler() -> Scaler:
    return Scaler(DEMO, scrape_interval="15s", evaluation_interval="15s")


def test_production_changes_nothing() -> None:
    scaler = Scaler(PROFILES["production"], scrape_interval="15s", evaluation_interval="15s")
    expr = 'increase(x[15m]) > 0 or (y unless y offset 15m) or max_over_time(z[1h:5m])'
    assert scaler.promql(expr) == expr
    assert scaler.hold("5m") == "5m" and scaler.interval("30s") == "30s" and scaler.range("5m") == "5m"


def test_the_demo_factor_is_one_thirtieth() -> None:
    assert DEMO.factor == pytest.approx(1 / 30)


@pytest.mark.parametrize(("production", "demo"), [
    ("5m", "10s"), ("10m", "20s"), ("2m", "4s"), ("1m", "2s"), ("15m", "30s"), ("0s", "0s"),
    ("10s", "1s"),  # 0.33 s floored at the evaluation interval
])
def test_for_durations_scale_with_the_evaluation_interval_as_floor(production: str, demo: str) -> None:
    assert demo_scaler().hold(production) == demo


@pytest.mark.parametrize(("production", "demo"), [
    ("15s", "1s"), ("30s", "1s"), ("10s", "1s"), ("5m", "10s"), ("1m", "2s"), ("4h", "8m"), ("1h", "2m"),
])
def test_intervals_and_waits_scale_with_a_one_second_floor(production: str, demo: str) -> None:
    assert demo_scaler().interval(production) == demo


def test_the_scrape_timeout_never_exceeds_the_scrape_interval() -> None:
    scaler = demo_scaler()
    assert scaler.scrape_seconds == 1
    assert parse_duration(scaler.timeout("10s")) <= scaler.scrape_seconds


def test_range_windows_keep_at_least_four_scrapes() -> None:
    scaler = Scaler(TimingProfile("t", factor=1 / 100), scrape_interval="15s", evaluation_interval="15s")
    # 5m / 100 = 3 s would hold three 1 s scrapes; the floor is four scrape intervals
    assert scaler.range("5m") == "4s"
    assert scaler.range("1h") == "36s"


@pytest.mark.parametrize(("expr", "expected"), [
    ("rate(x[5m])", "rate(x[10s])"),
    ("sum by (a) (rate(x_total{reason=~\"a|b\"}[5m]))", "sum by (a) (rate(x_total{reason=~\"a|b\"}[10s]))"),
    ("increase(x[15m]) > 0 or (y unless y offset 15m)", "increase(x[30s]) > 0 or (y unless y offset 30s)"),
    ("max_over_time(x[1h:5m])", "max_over_time(x[2m:10s])"),
    ("max_over_time(x[30m:])", "max_over_time(x[1m:])"),
    ("x offset -10m", "x offset -20s"),
    ("time() - x > 300", "time() - x > 300"),  # a number, not a duration
    ("a{path=\"[5m]\"} and b{re=~'[0-9]+'}", "a{path=\"[5m]\"} and b{re=~'[0-9]+'}"),  # strings untouched
    ("rate(x[1m30s])", "rate(x[4s])"),  # 3 s floored at four 1 s scrapes
])
def test_promql_ranges_subqueries_and_offsets_scale_and_strings_do_not(expr: str, expected: str) -> None:
    assert demo_scaler().promql(expr) == expected


def test_rule_documents_scale_for_keep_firing_for_and_expressions() -> None:
    document = {"groups": [{"name": "g", "interval": "30s", "rules": [
        {"alert": "A", "expr": "rate(x[5m]) > 1", "for": "10m", "keep_firing_for": "5m"},
        {"record": "r", "expr": "sum(rate(x[5m]))"},
    ]}]}
    demo_scaler().rules(document)
    group = document["groups"][0]
    assert group["interval"] == "1s"
    assert group["rules"][0] == {"alert": "A", "expr": "rate(x[10s]) > 1", "for": "20s", "keep_firing_for": "10s"}
    assert group["rules"][1]["expr"] == "sum(rate(x[10s]))"


def test_alertmanager_routes_scale_at_every_level() -> None:
    config = {"route": {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h",
                        "routes": [{"group_wait": "10s", "routes": [{"repeat_interval": "1h"}]}]}}
    demo_scaler().alertmanager_config(config)
    route = config["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("1s", "10s", "8m")
    assert route["routes"][0]["group_wait"] == "1s"
    assert route["routes"][0]["routes"][0]["repeat_interval"] == "2m"


def test_an_unknown_timing_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="production, demo"):
        profile("fast")
