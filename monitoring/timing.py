"""Timing profiles: the demo stack's intervals derived from the production configuration.

The production rules are the only hand-written timing. A profile multiplies every duration by a
``factor`` and then applies floors, so the demo is the same configuration on a shorter clock:

- scrape and evaluation intervals, rule-group intervals, ``group_wait``, ``group_interval`` and
  ``repeat_interval``: ``max(floor_seconds, round(d * factor))``; ``scrape_timeout`` is also
  capped at the (new) scrape interval;
- ``for:`` and ``keep_firing_for:``: ``max(evaluation interval, round(d * factor))``; ``0s``
  stays ``0s`` (an alert that fires at once still does);
- PromQL range selectors ``[d]`` and subquery ranges in rule expressions:
  ``max(range_scrapes * scrape interval, round(d * factor))``, so ``rate()`` always has several
  samples; subquery resolutions and ``offset d``: ``max(evaluation interval, round(d * factor))``.

Numbers that are not durations (thresholds such as ``> 0.01``, or ``> 300`` seconds of staleness)
are left alone, as are recording-rule names: ``...:rate5m`` still names the series a dashboard
reads, whatever window the demo uses. The production profile changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from monitoring.durations import DURATION, format_duration, parse_duration

Timing = Literal["production", "demo"]

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_RANGE = re.compile(rf"\[\s*({DURATION})\s*(?::\s*({DURATION})?\s*)?\]")
_OFFSET = re.compile(rf"\b(offset\s+)(-?)({DURATION})\b")


@dataclass(frozen=True)
class TimingProfile:
    name: str
    factor: float
    floor_seconds: float = 1.0
    range_scrapes: int = 4

    @property
    def is_identity(self) -> bool:
        return self.factor == 1.0


PROFILES: dict[str, TimingProfile] = {
    "production": TimingProfile("production", factor=1.0),
    # 5m -> 10s, 10m -> 20s, 15s scrapes -> 1s: HighErrorRate fires ~12 s after errors start.
    "demo": TimingProfile("demo", factor=1 / 30),
}


def profile(timing: str) -> TimingProfile:
    try:
        return PROFILES[timing]
    except KeyError:
        raise ValueError(f"unknown timing {timing!r}; use one of: {', '.join(PROFILES)}") from None


def _round(seconds: float) -> float:
    return float(int(seconds + 0.5))


class Scaler:
    """Applies one profile to the durations of one stack (knowing its scaled scrape/eval intervals)."""

    def __init__(self, timing: TimingProfile, *, scrape_interval: str, evaluation_interval: str) -> None:
        self.timing = timing
        self.scrape_seconds = parse_duration(self.interval(scrape_interval))
        self.evaluation_seconds = parse_duration(self.interval(evaluation_interval))

    def _scale(self, text: str, floor: float) -> str:
        if self.timing.is_identity:
            return text
        seconds = parse_duration(text)
        if seconds == 0:
            return text
        return format_duration(max(floor, _round(seconds * self.timing.factor)))

    def interval(self, text: str) -> str:
        """Scrape/evaluation/group intervals and Alertmanager waits."""
        return self._scale(text, self.timing.floor_seconds)

    def timeout(self, text: str) -> str:
        scaled = self.interval(text)
        if parse_duration(scaled) > self.scrape_seconds:
            return format_duration(self.scrape_seconds)
        return scaled

    def hold(self, text: str) -> str:
        """``for:`` and ``keep_firing_for:``."""
        return self._scale(text, self.evaluation_seconds)

    def range(self, text: str) -> str:
        return self._scale(text, self.timing.range_scrapes * self.scrape_seconds)

    def promql(self, expr: str) -> str:
        """Range selectors, subqueries and offsets of an expression; string literals untouched."""
        if self.timing.is_identity:
            return expr
        out: list[str] = []
        pos = 0
        for match in _STRING.finditer(expr):
            out.append(self._promql_code(expr[pos:match.start()]))
            out.append(match.group(0))
            pos = match.end()
        out.append(self._promql_code(expr[pos:]))
        return "".join(out)

    def _promql_code(self, code: str) -> str:
        def on_range(m: re.Match[str]) -> str:
            window = self.range(m.group(1))
            if m.group(0).find(":") < 0:
                return f"[{window}]"
            step = self.hold(m.group(2)) if m.group(2) else ""
            return f"[{window}:{step}]"

        def on_offset(m: re.Match[str]) -> str:
            return f"{m.group(1)}{m.group(2)}{self.hold(m.group(3))}"

        return _OFFSET.sub(on_offset, _RANGE.sub(on_range, code))

    # ------------------------------------------------------------------ whole documents
    def prometheus_config(self, config: dict[str, Any]) -> None:
        glob = config.setdefault("global", {})
        for key in ("scrape_interval", "evaluation_interval"):
            if key in glob:
                glob[key] = self.interval(str(glob[key]))
        if "scrape_timeout" in glob:
            glob["scrape_timeout"] = self.timeout(glob["scrape_timeout"])
        for job in config.get("scrape_configs") or []:
            if "scrape_interval" in job:
                job["scrape_interval"] = self.interval(job["scrape_interval"])
            if "scrape_timeout" in job:
                job["scrape_timeout"] = self.timeout(job["scrape_timeout"])

    def rules(self, document: dict[str, Any]) -> None:
        for group in document.get("groups") or []:
            if "interval" in group:
                group["interval"] = self.interval(group["interval"])
            for rule in group.get("rules") or []:
                rule["expr"] = self.promql(str(rule["expr"]))
                for key in ("for", "keep_firing_for"):
                    if key in rule:
                        rule[key] = self.hold(str(rule[key]))

    def alertmanager_config(self, config: dict[str, Any]) -> None:
        def walk(route: dict[str, Any]) -> None:
            for key in ("group_wait", "group_interval", "repeat_interval"):
                if key in route:
                    route[key] = self.interval(str(route[key]))
            for child in route.get("routes") or []:
                walk(child)

        walk(config.get("route") or {})
