import pytest

from monitoring.promql import label_values_selector, metric_names, substitute_variables


@pytest.mark.parametrize(("expr", "names"), [
    pytest.param('sum by (model_version) (rate(model_prediction_errors_total{reason=~"a|b"}[5m]))',
                 {"model_prediction_errors_total"}, id="aggregation-with-grouping-before-the-body"),
    pytest.param("sum(rate(x_total[1m])) by (job) / on (job) group_left(extra) up", {"x_total", "up"},
                 id="grouping-after-the-body-and-vector-matching"),
    pytest.param("histogram_quantile(0.95, sum by (le) (rate(h_bucket[$__rate_interval])))", {"h_bucket"},
                 id="nested-functions"),
    pytest.param("a > 1e3 and b offset 5m or c @ 123 unless d[5m:1m]", {"a", "b", "c", "d"},
                 id="numbers-offsets-at-and-subqueries"),
    pytest.param('label_replace(x, "dst", "$1", "src", "(.*)")', {"x"}, id="strings-are-not-names"),
    pytest.param('count(ALERTS{alertstate="firing"}) or vector(0)', {"ALERTS"}, id="builtin-series"),
    pytest.param("time() - model_drift_last_run_timestamp_seconds > 300",
                 {"model_drift_last_run_timestamp_seconds"}, id="functions-without-arguments"),
    pytest.param("model_version:model_prediction_requests:rate5m >= 1/3",
                 {"model_version:model_prediction_requests:rate5m"}, id="recording-rule-names-with-colons"),
    pytest.param("sum without (instance) (foo) + Inf - NaN", {"foo"}, id="inf-and-nan"),
    pytest.param("max by (a) (b) > bool 0.01", {"b"}, id="bool-modifier"),
    pytest.param("topk(3, sum by (x) (y{a=\"{b}\"}))", {"y"}, id="braces-inside-strings"),
    pytest.param("vector(1) # comment naming fake_metric\n+ z", {"z"}, id="comments"),
])
def test_metric_names_finds_exactly_the_series_an_expression_reads(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_variables_become_match_all_and_builtins_become_durations() -> None:
    expr = 'rate(x{model_name=~"$model", model_version=~"${version}", f=~"${feature:regex}"}[$__rate_interval])'
    assert substitute_variables(expr, {"model", "version", "feature"}) == \
        'rate(x{model_name=~".*", model_version=~".*", f=~".*"}[1m])'
    assert substitute_variables("x offset $__range", set()) == "x offset 1h"


def test_an_unknown_variable_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"\$modle"):
        substitute_variables('x{a=~"$modle"}', {"model"})


@pytest.mark.parametrize(("query", "selector"), [
    ("label_values(model_info, model_name)", "model_info"),
    ('label_values(model_predictions_total{model_name=~"$model"}, model_version)',
     'model_predictions_total{model_name=~"$model"}'),
    ("label_values(model_name)", None),
    ("query_result(max(up))", "max(up)"),
    ("metrics(model_.*)", None),
])
def test_variable_queries_yield_their_series_selector(query: str, selector: str | None) -> None:
    assert label_values_selector(query) == selector
