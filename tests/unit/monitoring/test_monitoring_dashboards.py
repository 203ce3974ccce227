"""Grafana dashboards and provisioning: a valid model, queries that parse and read known series only."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from monitoring import dashboards as build
from monitoring.contract import BUILTIN_SERIES, contract_series_names, recording_rule_names
from monitoring.dashboards_check import (
    DashboardQuery,
    dashboard_queries,
    load_dashboards,
    promql_errors,
    queries_of,
    queries_without_data,
    unknown_series,
)
from monitoring.render import RULE_FILES
from tests.unit.monitoring.monitoring_files import MONITORING, REPO, alerts

DASHBOARDS = load_dashboards()
PANEL_TYPES = {"timeseries", "stat", "state-timeline", "table"}
PROVISIONING = MONITORING / "grafana" / "provisioning"


def models() -> list[dict[str, Any]]:
    return list(DASHBOARDS.values())


def test_there_are_serving_drift_and_alerts_dashboards() -> None:
    assert {m["uid"] for m in models()} == {"driftwatch-serving", "driftwatch-drift", "driftwatch-overview",
                                            "driftwatch-quality"}


def test_committed_json_is_what_the_builder_writes() -> None:
    built = build.build_dashboards()
    assert {p.name for p in DASHBOARDS} == set(built)
    for path in DASHBOARDS:
        assert path.read_text() == build.dashboard_text(built[path.name]), \
            f"{path.name} is stale: run `python -m monitoring.dashboards`"


def test_uids_titles_and_panel_ids_are_unique() -> None:
    assert len({m["uid"] for m in models()}) == len(models())
    assert len({m["title"] for m in models()}) == len(models())
    for model in models():
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids), model["uid"]


def test_each_dashboard_is_a_complete_grafana_model() -> None:
    for model in models():
        for key in ("uid", "title", "tags", "panels", "templating", "annotations", "schemaVersion", "time"):
            assert key in model, f"{model.get('uid')}: missing {key}"
        assert "__inputs" not in model and "${DS_" not in json.dumps(model), "exported placeholders do not provision"
        assert len(model["uid"]) <= 40


def test_panels_fit_the_grid_without_overlapping() -> None:
    for model in models():
        cells: set[tuple[int, int]] = set()
        for panel in model["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
            mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                    for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & mine, f"{model['uid']}: {panel['title']} overlaps another panel"
            cells |= mine


def test_every_panel_has_a_type_unit_description_datasource_and_queries() -> None:
    for model in models():
        for panel in model["panels"]:
            where = f"{model['uid']}: {panel['title']}"
            assert panel["type"] in PANEL_TYPES, where
            assert panel["fieldConfig"]["defaults"]["unit"], f"{where} has no unit"
            assert panel["description"], where
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), where
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"]), where


def test_every_dashboard_has_datasource_model_and_version_variables() -> None:
    for model in models():
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert {"datasource", "model", "version"} <= variables.keys(), model["uid"]
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        assert variables["datasource"]["current"]["value"] == build.DATASOURCE_UID
        assert variables["version"]["multi"] and variables["version"]["allValue"] == ".*"


def test_rollbacks_are_annotations_on_every_dashboard() -> None:
    for model in models():
        names = {a["name"] for a in model["annotations"]["list"]}
        assert "Rollbacks" in names, model["uid"]


def test_dashboard_windows_are_rate_interval_not_hard_coded() -> None:
    for query in dashboard_queries():
        for window in re.findall(r"\[([^\]]*)\]", query.raw):
            assert window == "$__rate_interval", f"{query}: use [$__rate_interval], not [{window}]"
        assert not re.search(r"\boffset\s+\d", query.raw), f"{query}: use offset $__rate_interval"


def test_every_query_parses_as_promql(promtool: str) -> None:
    assert promql_errors(dashboard_queries(), promtool) == []


def test_every_query_reads_only_contract_metrics_and_recording_rules() -> None:
    allowed = contract_series_names() | recording_rule_names(*RULE_FILES) | BUILTIN_SERIES
    assert unknown_series(dashboard_queries(), allowed) == []


def test_every_panel_and_variable_has_a_query() -> None:
    queries = dashboard_queries()
    for model in models():
        panel_ids = {q.panel_id for q in queries if q.dashboard == model["uid"] and q.kind == "panel"}
        assert panel_ids == {p["id"] for p in model["panels"]}, model["uid"]
        variables = {q.where for q in queries if q.dashboard == model["uid"] and q.kind == "variable"}
        assert len(variables) == sum(1 for v in model["templating"]["list"] if v["type"] == "query")


def test_thresholds_drawn_on_panels_are_the_alert_thresholds() -> None:
    rules = alerts()
    assert f"> {build.ERROR_RATIO_SLA}" in rules["HighErrorRate"]["expr"]
    assert f"> {build.LATENCY_SLA_SECONDS}" in rules["HighLatency"]["expr"]
    assert f">= {build.DISTANCE_THRESHOLD}" in rules["PredictionDrift"]["expr"]
    assert f"model_drift_window_rows >= {build.MIN_WINDOW_ROWS}" in rules["FeatureDrift"]["expr"]
    assert f"> {build.STALE_SECONDS}" in rules["DriftCheckStale"]["expr"]


# ---------------------------------------------------------------------- provisioning
def test_the_datasource_has_the_fixed_uid_and_the_scrape_interval() -> None:
    document = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (datasource,) = document["datasources"]
    assert datasource["uid"] == build.DATASOURCE_UID and datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    prometheus = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    assert datasource["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]


def test_the_dashboard_provider_reads_where_compose_mounts_the_dashboards() -> None:
    document = yaml.safe_load((PROVISIONING / "dashboards" / "driftwatch.yml").read_text())
    (provider,) = document["providers"]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./monitoring/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent.as_posix() == provider["options"]["path"]
    assert (MONITORING / "grafana" / "dashboards" / Path(home).name).exists()


# ---------------------------------------------------------------------- the checker itself
def fake_model(expr: str, variable_query: str = "label_values(model_info, model_name)") -> dict[str, Any]:
    return {"uid": "t", "templating": {"list": [{"type": "query", "name": "model", "query": {"query": variable_query}}]},
            "annotations": {"list": [{"builtIn": 1, "expr": "ignored"}, {"name": "a", "expr": "up"}]},
            "panels": [{"id": 1, "title": "p", "targets": [{"refId": "A", "expr": expr}]},
                       {"id": 2, "type": "row", "title": "row", "panels": [
                           {"id": 3, "title": "nested", "targets": [{"refId": "A", "expr": "model_loaded"}]}]}]}


def test_the_checker_finds_panels_nested_rows_variables_and_annotations() -> None:
    queries = queries_of(fake_model('rate(x_total{model_name=~"$model"}[$__rate_interval])'))
    assert [(q.kind, q.panel_id, q.expr) for q in queries] == [
        ("panel", 1, 'rate(x_total{model_name=~".*"}[1m])'),
        ("panel", 3, "model_loaded"),
        ("variable", None, "model_info"),
        ("annotation", None, "up"),
    ]


def test_the_checker_flags_unknown_series_and_variables() -> None:
    queries = queries_of(fake_model("sum(rate(model_predictions_total[5m])) / rate(typo_total[5m])",
                                    variable_query="label_values(model_infoo, model_name)"))
    problems = unknown_series(queries, contract_series_names() | {"up"})
    assert len(problems) == 2 and "['typo_total']" in problems[0] and "['model_infoo']" in problems[1]
    with pytest.raises(ValueError, match=r"unknown variable \$verison"):
        queries_of(fake_model('model_info{model_version=~"$verison"}'))


def test_the_checker_reports_promql_that_does_not_parse(promtool: str) -> None:
    good = DashboardQuery("t", "panel", "fine (A)", 1, "up", "up")
    bad = DashboardQuery("t", "panel", "broken (A)", 2, "sum(rate(x[1m])", "sum(rate(x[1m])")
    problems = promql_errors([good, bad], promtool)
    assert len(problems) == 1 and "broken (A)" in problems[0] and "parse error" in problems[0]


@pytest.fixture
def fake_prometheus() -> Iterator[str]:
    """Answers /api/v1/query: data for model_info, a parse error for 'broken', nothing otherwise."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)["query"][0]
            if "broken" in query:
                body: dict[str, Any] = {"status": "error", "errorType": "bad_data", "error": "parse error"}
            else:
                result = [{"metric": {}, "value": [0, "1"]}] if "model_info" in query else []
                body = {"status": "success", "data": {"resultType": "vector", "result": result}}
            data = json.dumps(body).encode()
            self.send_response(200 if body["status"] == "success" else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_queries_without_data_lists_empty_and_failing_panels_but_not_annotations(fake_prometheus: str,
                                                                                tmp_path: Path) -> None:
    model = fake_model("max(model_info)")
    model["panels"].append({"id": 4, "title": "empty", "targets": [{"refId": "A", "expr": "model_loaded"}]})
    model["panels"].append({"id": 5, "title": "bad", "targets": [{"refId": "A", "expr": "broken"}]})
    (tmp_path / "t.json").write_text(json.dumps(model))
    missing = queries_without_data(fake_prometheus, tmp_path)
    assert missing == [
        "t / nested (A): model_loaded: no data",
        "t / empty (A): model_loaded: no data",
        "t / bad (A): broken: error bad_data: parse error",
    ]
