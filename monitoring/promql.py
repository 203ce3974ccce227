"""Just enough PromQL handling for checks: Grafana variables out, metric names out.

There is no Python PromQL parser here; parsing proper is left to ``promtool check rules`` (see
:func:`monitoring.dashboards_check.promql_errors`). This module only needs to find which series
names an expression reads, which a careful scan does: drop string literals, comments, label
matchers, ranges, grouping label lists and offsets, then every remaining identifier that is not a
keyword, an aggregation or a function call is a series name.
"""

from __future__ import annotations

import re

# Grafana's built-in variables, with the value a check substitutes.
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
}
AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                          "bottomk", "topk", "quantile"})
KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and",
                      "or", "unless", "atan2", "inf", "nan", "start", "end"})

_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::[\w]+)?\}|\$([A-Za-z_]\w*)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_COMMENT = re.compile(r"#[^\n]*")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_MODIFIER = re.compile(r"\boffset\s+-?[\w.]+|@\s*[\w.()]+", re.IGNORECASE)
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")


def substitute_variables(expr: str, variables: set[str] | frozenset[str]) -> str:
    """``expr`` with Grafana variables replaced: built-ins by a duration, dashboard variables by
    ``.*`` (they sit in regex matchers). An unknown variable is an error, so typos surface."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        if name in variables:
            return ".*"
        raise ValueError(f"unknown variable ${name} in {expr!r}; known: {sorted(variables)}")

    return _VARIABLE.sub(replace, expr)


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects (``up``, ``model_info``, recording rule names ...)."""
    code = _STRING.sub('""', expr)
    code = _COMMENT.sub(" ", code)
    code = _MATCHERS.sub(" ", code)
    code = _RANGE.sub(" ", code)
    code = _GROUPING.sub(r" \1 ", code)
    code = _MODIFIER.sub(" ", code)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(code):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS or name in AGGREGATIONS:
            continue
        names.add(name)
    return names


def label_values_selector(query: str) -> str | None:
    """The series selector inside a Grafana ``label_values(selector, label)`` variable query, or None
    for ``label_values(label)`` (all series) and queries of other kinds."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_]\w*)\s*\)\s*", query, re.DOTALL)
    if match:
        return match.group(1).strip()
    match = re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.DOTALL)
    return match.group(1).strip() if match else None
