"""Every query of the Grafana dashboards, and the checks on them: it parses, it reads only known
series, and (against a live Prometheus fed by the running stack) it returns data.

Grafana cannot run here, so this is how dashboards are tested:

>>> queries = dashboard_queries()                     # panels, variables and annotations
>>> promql_errors(queries)                            # [] when promtool parses every expression
>>> queries_without_data("http://127.0.0.1:9090")     # [] when every panel shows something
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from monitoring.dashboards import DASHBOARDS_DIR
from monitoring.promql import label_values_selector, metric_names, substitute_variables

QueryKind = Literal["panel", "variable", "annotation"]


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str  # uid
    kind: QueryKind
    where: str  # panel title and refId, variable name or annotation name
    panel_id: int | None
    raw: str  # as in the JSON, with Grafana variables
    expr: str  # variables substituted: what Prometheus is asked

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.where}: {self.expr}"


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[Path, dict[str, Any]]:
    return {path: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def _variables(model: dict[str, Any]) -> set[str]:
    return {str(v["name"]) for v in model.get("templating", {}).get("list", [])}


def _panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Panels, including those nested in collapsed rows."""
    found: list[dict[str, Any]] = []
    for panel in model.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries_of(model: dict[str, Any]) -> list[DashboardQuery]:
    uid = str(model.get("uid"))
    variables = _variables(model)
    out: list[DashboardQuery] = []

    def add(kind: QueryKind, where: str, panel_id: int | None, raw: str) -> None:
        out.append(DashboardQuery(uid, kind, where, panel_id, raw, substitute_variables(raw, variables)))

    for panel in _panels(model):
        for t in panel.get("targets", []):
            if t.get("expr"):
                add("panel", f"{panel.get('title')} ({t.get('refId')})", panel.get("id"), str(t["expr"]))
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        selector = label_values_selector(str(text or ""))
        if selector:
            add("variable", f"variable ${variable['name']}", None, selector)
    for annotation in model.get("annotations", {}).get("list", []):
        if annotation.get("expr") and not annotation.get("builtIn"):
            add("annotation", f"annotation {annotation.get('name')}", None, str(annotation["expr"]))
    return out


def dashboard_queries(path: Path | None = None) -> list[DashboardQuery]:
    """Every query of one dashboard file, or of every dashboard under monitoring/grafana/dashboards."""
    if path is not None and path.is_file():
        return queries_of(json.loads(path.read_text()))
    out: list[DashboardQuery] = []
    for model in load_dashboards(path or DASHBOARDS_DIR).values():
        out.extend(queries_of(model))
    return out


def unknown_series(queries: list[DashboardQuery], allowed: frozenset[str] | set[str]) -> list[str]:
    """Queries that read a series name outside ``allowed``, as readable lines."""
    problems = []
    for query in queries:
        extra = metric_names(query.expr) - set(allowed)
        if extra:
            problems.append(f"{query}: reads {sorted(extra)}")
    return problems


def promql_errors(queries: list[DashboardQuery], promtool: str | None = None) -> list[str]:
    """Parse every expression with ``promtool check rules`` (one recording rule per query);
    returns promtool's complaints, empty when everything parses."""
    binary = promtool or shutil.which("promtool")
    if binary is None:
        raise FileNotFoundError("promtool is not installed (Debian package prometheus)")
    groups = [{"name": f"q{i} {q.dashboard} {q.where}",
               "rules": [{"record": f"dashboard:query_{i}:check", "expr": q.expr}]}
              for i, q in enumerate(queries)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboard-queries.yml"
        path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000))
        result = subprocess.run([binary, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    if result.returncode == 0:
        return []
    problems = [line.strip() for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "Checking" not in line and "FAILED" not in line]
    return problems or [f"promtool exit {result.returncode}"]


def queries_without_data(prometheus_url: str, directory: Path = DASHBOARDS_DIR, *, timeout: float = 5.0,
                         kinds: tuple[QueryKind, ...] = ("panel", "variable")) -> list[str]:
    """Panel and variable queries that return no data (or an error) from a live Prometheus, as
    readable lines; empty when every panel would show something. Annotations mark events, so an
    empty answer is normal for them and they are not asked."""
    empty: list[str] = []
    with httpx.Client(base_url=prometheus_url.rstrip("/"), timeout=timeout) as client:
        for query in dashboard_queries(directory):
            if query.kind not in kinds:
                continue
            response = client.get("/api/v1/query", params={"query": query.expr})
            body = response.json()
            if body.get("status") != "success":
                empty.append(f"{query}: error {body.get('errorType')}: {body.get('error')}")
            elif not body["data"]["result"]:
                empty.append(f"{query}: no data")
    return empty
