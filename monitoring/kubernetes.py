"""prometheus-operator resources and Grafana dashboards for ``deploy/kubernetes/``, from ``monitoring/``.

One source: the rule files, ``alertmanager.yml`` and the dashboards under ``monitoring/`` are what
``driftwatch up`` and docker-compose run; this module translates them for a cluster with
prometheus-operator and Grafana's dashboard sidecar:

- a ``PrometheusRule`` holding every recording and alerting rule group, unchanged except for the
  links people click and a ``namespace`` label on each alert (see :data:`NAMESPACE`);
- an ``AlertmanagerConfig`` (``monitoring.coreos.com/v1alpha1``) with the same route tree, receivers
  and inhibition, Slack's URL and the webhook's bearer token taken from a Secret by reference;
- the dashboards with their datasource variable defaulting to the cluster Grafana's Prometheus.

``deploy/render_kubernetes.py`` writes the files; a test fails when the committed ones differ.
Anything in ``alertmanager.yml`` this translation does not know raises, so a new option there
cannot be silently dropped from the cluster's configuration.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitoring.render import MONITORING, WEBHOOK_RECEIVER, alertmanager_source, rule_documents, yaml_text

# The namespace the base is written for. An overlay that sets another namespace also rewrites the two
# places that name it, with kustomize replacements (deploy/kubernetes/overlays/example): the
# ``namespace`` label of every alert and the host of the rollback webhook's URL.
NAMESPACE = "driftwatch"
# The Secret the operator reads Slack's URL and the webhook's token from (kubectl create secret ...,
# docs/kubernetes.md); it must be in the AlertmanagerConfig's namespace.
SECRET_NAME = "driftwatch-secrets"
SLACK_URL_KEY = "slack-webhook-url"
WEBHOOK_TOKEN_KEY = "webhook-token"
WEBHOOK_SERVICE = "rollback-webhook"
WEBHOOK_PORT = 9102
# kube-prometheus-stack provisions its Prometheus datasource with this uid.
DEFAULT_DATASOURCE_UID = "prometheus"
# What people open from Slack: `kubectl port-forward` to Grafana (docs/kubernetes.md); teams render their own.
DEFAULT_GRAFANA_URL = "http://localhost:3000"
DASHBOARDS = MONITORING / "grafana" / "dashboards"

_MATCHER = re.compile(r'^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*'
                      r'(?P<value>"(?:[^"\\]|\\.)*"|[^"\s]*)\s*$')
_MATCH_TYPES = {"=", "!=", "=~", "!~"}

# alertmanager.yml key -> AlertmanagerConfig key, per object kind; a key missing here raises.
_ROUTE_KEYS = {"receiver": "receiver", "group_by": "groupBy", "group_wait": "groupWait",
               "group_interval": "groupInterval", "repeat_interval": "repeatInterval", "continue": "continue",
               "matchers": "matchers", "routes": "routes", "mute_time_intervals": "muteTimeIntervals",
               "active_time_intervals": "activeTimeIntervals"}
_SLACK_KEYS = {"channel": "channel", "username": "username", "send_resolved": "sendResolved", "color": "color",
               "title": "title", "title_link": "titleLink", "fallback": "fallback", "text": "text",
               "pretext": "pretext", "footer": "footer", "icon_emoji": "iconEmoji", "icon_url": "iconURL",
               "image_url": "imageURL", "thumb_url": "thumbURL", "link_names": "linkNames",
               "short_fields": "shortFields", "callback_id": "callbackId", "mrkdwn_in": "mrkdwnIn",
               "actions": "actions", "api_url_file": "apiURL", "api_url": "apiURL"}
_WEBHOOK_KEYS = {"url": "url", "send_resolved": "sendResolved", "max_alerts": "maxAlerts",
                 "http_config": "httpConfig", "timeout": "timeout"}
_INHIBIT_KEYS = {"source_matchers": "sourceMatch", "target_matchers": "targetMatch", "equal": "equal"}
# Set on the Alertmanager resource (or its Helm values) in a cluster, not per AlertmanagerConfig.
_GLOBAL_ONLY = {"global"}


def prometheus_rule(*, runbook_url: str, grafana_url: str = DEFAULT_GRAFANA_URL) -> dict[str, Any]:
    """All recording and alerting rule groups of ``monitoring/`` as one ``PrometheusRule``.

    Every alert gets the label ``namespace``: the operator's AlertmanagerConfig only routes alerts
    whose ``namespace`` label is its own namespace, and alerts built on the recording rules (summed
    over instances) would otherwise have none.
    """
    groups: list[dict[str, Any]] = []
    for _source, document in rule_documents(runbook_url=runbook_url, grafana_url=grafana_url):
        for group in document.get("groups") or []:
            for rule in group.get("rules") or []:
                if "alert" in rule:
                    rule["labels"] = {**(rule.get("labels") or {}), "namespace": NAMESPACE}
            groups.append(group)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "driftwatch", "labels": {"app.kubernetes.io/name": "driftwatch"}},
        "spec": {"groups": groups},
    }


def webhook_url(namespace: str = NAMESPACE) -> str:
    """The rollback webhook as the cluster's Alertmanager (in another namespace) reaches it."""
    return f"http://{WEBHOOK_SERVICE}.{namespace}.svc:{WEBHOOK_PORT}/alerts"


def alertmanager_config() -> dict[str, Any]:
    """``monitoring/alertmanager/alertmanager.yml`` as an ``AlertmanagerConfig`` (v1alpha1)."""
    source = alertmanager_source()
    unknown = sorted(set(source) - {"route", "receivers", "inhibit_rules"} - _GLOBAL_ONLY)
    if unknown:
        raise ValueError(f"alertmanager.yml: no AlertmanagerConfig translation for top-level {unknown}")
    spec: dict[str, Any] = {
        "route": _route(source["route"]),
        "receivers": [_receiver(r) for r in source.get("receivers") or []],
        "inhibitRules": [_rename(rule, _INHIBIT_KEYS, "inhibit rule", _inhibit_value)
                         for rule in source.get("inhibit_rules") or []],
    }
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": {"name": "driftwatch", "labels": {"app.kubernetes.io/name": "driftwatch"}},
        "spec": spec,
    }


def dashboards(datasource_uid: str = DEFAULT_DATASOURCE_UID) -> dict[str, str]:
    """File name -> JSON text of each dashboard, its datasource variable defaulting to ``datasource_uid``."""
    out: dict[str, str] = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        found = False
        for variable in (dashboard.get("templating") or {}).get("list") or []:
            if variable.get("type") == "datasource" and variable.get("query") == "prometheus":
                variable["current"] = {"selected": True, "text": "Prometheus", "value": datasource_uid}
                found = True
        if not found:
            raise ValueError(f"{path.name}: no Prometheus datasource variable to point at the cluster's Grafana")
        out[path.name] = json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"
    return out


# ---------------------------------------------------------------------- translation
def matcher(text: str) -> dict[str, str]:
    """``name=~"value"`` (Alertmanager's matcher syntax) as an AlertmanagerConfig matcher object."""
    match = _MATCHER.match(text)
    if match is None or match["op"] not in _MATCH_TYPES:
        raise ValueError(f"matcher {text!r} is not name<op>\"value\"")
    value = match["value"]
    if value.startswith('"'):
        value = json.loads(value)
    return {"name": match["name"], "value": value, "matchType": match["op"]}


def _rename(obj: Mapping[str, Any], keys: Mapping[str, str], what: str,
            convert: Any = None) -> dict[str, Any]:
    unknown = sorted(set(obj) - set(keys))
    if unknown:
        raise ValueError(f"alertmanager.yml: no AlertmanagerConfig translation for {what} key(s) {unknown}")
    return {keys[key]: (convert(key, value) if convert else value) for key, value in obj.items()}


def _route(route: Mapping[str, Any]) -> dict[str, Any]:
    def convert(key: str, value: Any) -> Any:
        if key == "matchers":
            return [matcher(m) for m in value]
        if key == "routes":
            return [_route(child) for child in value]
        return value

    return _rename(route, _ROUTE_KEYS, "route", convert)


def _inhibit_value(key: str, value: Any) -> Any:
    return value if key == "equal" else [matcher(m) for m in value]


def _secret(key: str) -> dict[str, str]:
    return {"name": SECRET_NAME, "key": key}


def _receiver(receiver: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": receiver["name"]}
    for key, configs in receiver.items():
        if key == "name":
            continue
        if key == "slack_configs":
            out["slackConfigs"] = [_rename(c, _SLACK_KEYS, "slack_configs", _slack_value) for c in configs]
        elif key == "webhook_configs":
            if receiver["name"] != WEBHOOK_RECEIVER:
                raise ValueError(f"alertmanager.yml: webhook receiver {receiver['name']!r} is not the rollback "
                                 f"webhook ({WEBHOOK_RECEIVER}); add its translation to monitoring/kubernetes.py")
            out["webhookConfigs"] = [_rename(c, _WEBHOOK_KEYS, "webhook_configs", _webhook_value) for c in configs]
        else:
            raise ValueError(f"alertmanager.yml: no AlertmanagerConfig translation for receiver key {key!r}")
    return out


def _slack_value(key: str, value: Any) -> Any:
    if key in ("api_url_file", "api_url"):
        return _secret(SLACK_URL_KEY)  # the URL is a secret: never written into a resource
    return value


def _webhook_value(key: str, value: Any) -> Any:
    if key == "url":
        return webhook_url()
    if key == "http_config":
        unknown = sorted(set(value) - {"authorization"})
        auth = value.get("authorization") or {}
        if unknown or auth.get("type", "Bearer") != "Bearer":
            raise ValueError(f"alertmanager.yml: webhook http_config {sorted(value)} has no translation "
                             "(only a Bearer authorization from a file)")
        return {"authorization": {"type": "Bearer", "credentials": _secret(WEBHOOK_TOKEN_KEY)}}
    return value


def write(out: Path, *, runbook_url: str, grafana_url: str = DEFAULT_GRAFANA_URL,
          datasource_uid: str = DEFAULT_DATASOURCE_UID) -> list[Path]:
    """Write the generated files of ``deploy/kubernetes/components/`` under ``out``; returns them."""
    header = ("# Generated by deploy/render_kubernetes.py from monitoring/ (monitoring/kubernetes.py).\n"
              "# Do not edit: change the source and render again.\n")
    operator = out / "prometheus-operator"
    grafana = out / "grafana-dashboards" / "dashboards"
    operator.mkdir(parents=True, exist_ok=True)
    grafana.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in (("prometheusrule.yaml", prometheus_rule(runbook_url=runbook_url, grafana_url=grafana_url)),
                           ("alertmanagerconfig.yaml", alertmanager_config())):
        path = operator / name
        path.write_text(header + yaml_text(document))
        written.append(path)
    for stale in grafana.glob("*.json"):
        stale.unlink()
    for name, text in dashboards(datasource_uid).items():
        path = grafana / name
        path.write_text(text)
        written.append(path)
    return written
