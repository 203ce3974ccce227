"""Write the Prometheus and Alertmanager configuration one stack runs, from the committed sources.

The committed files under ``monitoring/`` describe the 127.0.0.1 stack in production timing. A
stack differs in a few places only, and this module substitutes exactly those:

- scrape targets per job (a fixed list; a DNS name Prometheus resolves to every address it has:
  DNS service discovery, which docker-compose uses for the serving replicas; or a file Prometheus
  watches: file-based service discovery, which `driftwatch up` uses for the serving replicas), and
  the Alertmanager that Prometheus sends alerts to;
- the rollback webhook's URL and the file holding its bearer token;
- the Slack incoming-webhook URL: a file (``api_url_file``; the URL itself never lands in a
  config) or, for the local Slack sink only, a plain URL;
- the external URLs in alert annotations: Grafana (dashboard links) and the runbooks;
- timing: ``production`` as committed, or ``demo``, derived by :mod:`monitoring.timing`.

Pure Python (stdlib + PyYAML). ``python -m monitoring.render --help`` renders from the shell.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from monitoring.timing import Scaler, Timing, profile

MONITORING = Path(__file__).resolve().parent
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
RULE_FILES = (MONITORING / "prometheus" / "recording.rules.yml", MONITORING / "alerts" / "driftwatch.rules.yml")
ALERTMANAGER_CONFIG = MONITORING / "alertmanager" / "alertmanager.yml"
RUNBOOKS = MONITORING.parent / "docs" / "runbooks.md"

# What the committed annotations start with; replaced by the deployment's URLs.
RUNBOOK_PLACEHOLDER = "https://driftwatch.invalid/docs/runbooks.md"
DEFAULT_GRAFANA_URL = "http://127.0.0.1:3000"
DEFAULT_CHANNELS = {"oncall": "#driftwatch-oncall", "ml": "#driftwatch-ml"}
WEBHOOK_RECEIVER = "rollback-webhook"
JOBS = ("serving", "drift_exporter", "rollback_webhook", "quality", "prometheus", "alertmanager")
SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")


@dataclass(frozen=True)
class RenderedConfig:
    directory: Path
    prometheus: Path
    alertmanager: Path
    rules: tuple[Path, ...]
    timing: str


def render_stack_config(
    out_dir: Path,
    *,
    targets: Mapping[str, Sequence[str]],
    dns_sd: Mapping[str, tuple[str, int]] | None = None,
    file_sd: Mapping[str, Path | str] | None = None,
    webhook_url: str,
    webhook_token_file: Path | str,
    slack_url_file: Path | str | None,
    slack_fallback_url: str | None,
    grafana_url: str,
    alertmanager_url: str,
    timing: Timing = "production",
    runbook_url: str | None = None,
    oncall_channel: str = DEFAULT_CHANNELS["oncall"],
    ml_channel: str = DEFAULT_CHANNELS["ml"],
) -> RenderedConfig:
    """Write ``prometheus.yml``, ``rules/*.yml`` and ``alertmanager.yml`` for one stack into ``out_dir``.

    ``targets`` maps every job (serving, drift_exporter, rollback_webhook, prometheus,
    alertmanager) to ``host:port`` addresses; a job in ``dns_sd`` instead scrapes every address of
    a DNS name on a port (Prometheus' ``dns_sd_configs``, A records, re-resolved at every scrape
    interval), and a job in ``file_sd`` reads its targets from that JSON file (Prometheus'
    ``file_sd_configs``, re-read when the file changes). ``alertmanager_url`` is where Prometheus
    reaches Alertmanager; ``grafana_url`` and ``runbook_url`` are what people click (the default
    runbook is ``docs/runbooks.md`` of this checkout as a ``file://`` URL). Paths are written as given:
    pass paths as the Prometheus/Alertmanager processes will see them (e.g. ``/run/secrets/...``).
    """
    scaler_profile = profile(timing)
    out_dir = Path(out_dir)
    rules_dir = out_dir / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    for stale in rules_dir.glob("*.yml"):
        stale.unlink()

    prometheus = _load(PROMETHEUS_CONFIG)
    glob = prometheus.get("global") or {}
    scaler = Scaler(scaler_profile, scrape_interval=str(glob.get("scrape_interval", "1m")),
                    evaluation_interval=str(glob.get("evaluation_interval", "1m")))
    _set_targets(prometheus, targets, dns_sd or {}, file_sd or {})
    _set_alertmanager(prometheus, alertmanager_url)
    prometheus["rule_files"] = ["rules/*.yml"]
    scaler.prometheus_config(prometheus)

    written_rules: list[Path] = []
    for source, document in rule_documents(runbook_url=runbook_url, grafana_url=grafana_url):
        scaler.rules(document)
        if not scaler_profile.is_identity:
            _note_timing(document, scaler_profile.factor, timing)
        path = rules_dir / source.name
        _dump(path, document, source, timing)
        written_rules.append(path)

    alertmanager = _load(ALERTMANAGER_CONFIG)
    _set_webhook(alertmanager, webhook_url, webhook_token_file)
    _set_slack(alertmanager, slack_url_file, slack_fallback_url,
               {DEFAULT_CHANNELS["oncall"]: oncall_channel, DEFAULT_CHANNELS["ml"]: ml_channel})
    scaler.alertmanager_config(alertmanager)

    prometheus_path = out_dir / "prometheus.yml"
    alertmanager_path = out_dir / "alertmanager.yml"
    _dump(prometheus_path, prometheus, PROMETHEUS_CONFIG, timing)
    _dump(alertmanager_path, alertmanager, ALERTMANAGER_CONFIG, timing)
    return RenderedConfig(out_dir, prometheus_path, alertmanager_path, tuple(written_rules), timing)


def rule_documents(*, runbook_url: str | None, grafana_url: str) -> list[tuple[Path, dict[str, Any]]]:
    """Each committed rule file (recording rules, then alerts) as loaded, with the annotation links
    pointing at ``runbook_url`` (default: this checkout's ``docs/runbooks.md``) and ``grafana_url``.
    Production timing. Every renderer of rules (Prometheus files, Kubernetes PrometheusRule) starts here."""
    runbook = runbook_url or RUNBOOKS.as_uri()
    documents = []
    for source in RULE_FILES:
        document = _load(source)
        _set_links(document, runbook_url=runbook, grafana_url=grafana_url, source=source)
        documents.append((source, document))
    return documents


def alertmanager_source() -> dict[str, Any]:
    """The committed Alertmanager configuration (a copy: callers may change it)."""
    return _load(ALERTMANAGER_CONFIG)


# ---------------------------------------------------------------------- substitutions
def _set_targets(config: dict[str, Any], targets: Mapping[str, Sequence[str]],
                 dns_sd: Mapping[str, tuple[str, int]], file_sd: Mapping[str, Path | str]) -> None:
    jobs = {job["job_name"]: job for job in config.get("scrape_configs") or []}
    both = sorted((set(targets) & set(dns_sd)) | (set(targets) & set(file_sd)) | (set(dns_sd) & set(file_sd)))
    if both:
        raise ValueError(f"jobs {both} have more than one of fixed targets, a DNS name and a service-discovery "
                         "file; give one")
    named = set(targets) | set(dns_sd) | set(file_sd)
    unknown = sorted(named - set(jobs))
    missing = sorted(set(jobs) - named)
    if unknown or missing:
        raise ValueError(f"targets must name exactly the jobs {sorted(jobs)}; "
                         f"unknown: {unknown or 'none'}, missing: {missing or 'none'}")
    for name, addresses in targets.items():
        if isinstance(addresses, str):
            addresses = [addresses]
        for address in addresses:
            if "://" in address or "/" in address or ":" not in address:
                raise ValueError(f"target {address!r} of job {name} must be host:port (no scheme, no path)")
        jobs[name]["static_configs"] = [{"targets": list(addresses)}]
    interval = str((config.get("global") or {}).get("scrape_interval", "1m"))
    for name, (host, port) in dns_sd.items():
        job = jobs[name]
        job.pop("static_configs", None)
        job["dns_sd_configs"] = [{"names": [host], "type": "A", "port": int(port), "refresh_interval": interval}]
    for name, path in file_sd.items():
        job = jobs[name]
        job.pop("static_configs", None)
        job["file_sd_configs"] = [{"files": [str(path)], "refresh_interval": "1m"}]


def _set_alertmanager(config: dict[str, Any], url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"alertmanager_url {url!r} must be an http(s) URL such as http://127.0.0.1:9093")
    entry: dict[str, Any] = {"static_configs": [{"targets": [parts.netloc]}]}
    if parts.scheme != "http":
        entry["scheme"] = parts.scheme
    if parts.path.strip("/"):
        entry["path_prefix"] = parts.path
    config["alerting"] = {"alertmanagers": [entry]}


def _replace_prefix(value: str, prefix: str, new: str, *, what: str, where: str) -> str:
    if not value.startswith(prefix):
        raise ValueError(f"{where}: {what} {value!r} should start with {prefix!r} (the committed default)")
    return new.rstrip("/") + value[len(prefix):]


def _set_links(document: dict[str, Any], *, runbook_url: str, grafana_url: str, source: Path) -> None:
    for group in document.get("groups") or []:
        for rule in group.get("rules") or []:
            annotations = rule.get("annotations")
            if not annotations:
                continue
            where = f"{source.name}: {rule.get('alert')}"
            if "runbook_url" in annotations:
                annotations["runbook_url"] = _replace_prefix(
                    annotations["runbook_url"], RUNBOOK_PLACEHOLDER, runbook_url, what="runbook_url", where=where)
            if "dashboard_url" in annotations:
                annotations["dashboard_url"] = _replace_prefix(
                    annotations["dashboard_url"], DEFAULT_GRAFANA_URL, grafana_url, what="dashboard_url", where=where)


def _note_timing(document: dict[str, Any], factor: float, timing: str) -> None:
    """Descriptions state production durations; say so where the stack runs on a shorter clock."""
    note = f" [{timing} timing: windows and waits are {round(1 / factor)} times shorter than stated]"
    for group in document.get("groups") or []:
        for rule in group.get("rules") or []:
            annotations = rule.get("annotations") or {}
            if "description" in annotations:
                annotations["description"] = str(annotations["description"]) + note


def _receivers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in config.get("receivers") or []}


def _set_webhook(config: dict[str, Any], url: str, token_file: Path | str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"webhook_url {url!r} must be an http(s) URL such as http://127.0.0.1:9102/alerts")
    receiver = _receivers(config).get(WEBHOOK_RECEIVER)
    if receiver is None:
        raise ValueError(f"{ALERTMANAGER_CONFIG} has no receiver named {WEBHOOK_RECEIVER}")
    for hook in receiver.get("webhook_configs") or []:
        hook["url"] = url
        hook.setdefault("http_config", {})["authorization"] = {"type": "Bearer",
                                                               "credentials_file": str(token_file)}


def _set_slack(config: dict[str, Any], url_file: Path | str | None, fallback_url: str | None,
               channels: Mapping[str, str]) -> None:
    if url_file is None and fallback_url is None:
        raise ValueError("no Slack destination: pass slack_url_file (a file holding the incoming-webhook "
                         "URL) or slack_fallback_url (a local stand-in such as the Slack sink)")
    if url_file is None and fallback_url is not None:
        host = urlsplit(fallback_url).hostname or ""
        if host.endswith(SLACK_HOSTS):
            raise ValueError("slack_fallback_url is a real Slack webhook URL, which is a secret: write it to a "
                             "file (mode 0600) and pass slack_url_file instead")
    for receiver in config.get("receivers") or []:
        for slack in receiver.get("slack_configs") or []:
            slack.pop("api_url", None)
            slack.pop("api_url_file", None)
            if url_file is not None:
                slack["api_url_file"] = str(url_file)
            else:
                slack["api_url"] = fallback_url
            slack["channel"] = channels.get(slack.get("channel", ""), slack.get("channel"))


# ---------------------------------------------------------------------- YAML
def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return copy.deepcopy(document)


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (rule expressions, Slack templates), no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(path: Path, document: dict[str, Any], source: Path, timing: str) -> None:
    try:
        origin = source.relative_to(MONITORING.parent)
    except ValueError:
        origin = source
    header = (f"# Rendered by monitoring/render.py from {origin} (timing: {timing}).\n"
              "# Do not edit: change the source and render again.\n")
    path.write_text(header + yaml_text(document))


def yaml_text(document: Any) -> str:
    """YAML as the rendered files are written: keys in order, block style for multi-line strings."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000,
                     allow_unicode=True)


# ---------------------------------------------------------------------- command line
PRESETS: dict[str, dict[str, Any]] = {
    # `driftwatch up`: every process on 127.0.0.1, docs/contract.md ports.
    "local": {
        "targets": {"serving": ["127.0.0.1:8000"], "drift_exporter": ["127.0.0.1:9101"],
                    "rollback_webhook": ["127.0.0.1:9102"], "quality": ["127.0.0.1:9103"],
                    "prometheus": ["127.0.0.1:9090"],
                    "alertmanager": ["127.0.0.1:9093"]},
        "webhook_url": "http://127.0.0.1:9102/alerts",
        "alertmanager_url": "http://127.0.0.1:9093",
        "grafana_url": DEFAULT_GRAFANA_URL,
    },
    # docker-compose.yml: service names inside the network, secrets under /run/secrets.
    "compose": {
        # The serving replicas: every address Docker's DNS gives for the service name "serving".
        "dns_sd": {"serving": ("serving", 8000)},
        "targets": {"drift_exporter": ["drift-exporter:9101"],
                    "rollback_webhook": ["rollback-webhook:9102"], "quality": ["quality:9103"],
                    "prometheus": ["localhost:9090"],
                    "alertmanager": ["alertmanager:9093"]},
        "webhook_url": "http://rollback-webhook:9102/alerts",
        "webhook_token_file": "/run/secrets/webhook_token",
        "slack_url_file": "/run/secrets/slack_webhook_url",
        "alertmanager_url": "http://alertmanager:9093",
        "grafana_url": "http://localhost:3000",
    },
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m monitoring.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="folder to write prometheus.yml, rules/ and alertmanager.yml to")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="local")
    parser.add_argument("--timing", choices=["production", "demo"], default="production")
    parser.add_argument("--webhook-token-file", help="file with the rollback webhook's bearer token")
    parser.add_argument("--slack-url-file", help="file with the Slack incoming-webhook URL")
    parser.add_argument("--slack-fallback-url", help="plain URL of a local Slack stand-in (not a real Slack URL)")
    parser.add_argument("--grafana-url", help="Grafana as people reach it (dashboard links)")
    parser.add_argument("--runbook-url", help="where people read docs/runbooks.md (default: this checkout's file)")
    args = parser.parse_args(argv)
    preset = dict(PRESETS[args.preset])
    for key in ("webhook_token_file", "slack_url_file", "grafana_url"):
        if getattr(args, key):
            preset[key] = getattr(args, key)
    if args.preset == "compose" and not args.runbook_url:
        parser.error("--runbook-url is required with --preset compose: the address where your team reads "
                     "docs/runbooks.md (Slack links are opened on other machines than this checkout)")
    if "webhook_token_file" not in preset:
        parser.error("--webhook-token-file is required with --preset local")
    slack_file = preset.pop("slack_url_file", None)
    if args.slack_fallback_url:
        slack_file = args.slack_url_file
    if slack_file is None and not args.slack_fallback_url:
        parser.error("give --slack-url-file or --slack-fallback-url")
    rendered = render_stack_config(args.out_dir, slack_url_file=slack_file, slack_fallback_url=args.slack_fallback_url,
                                   timing=args.timing, runbook_url=args.runbook_url, **preset)
    print(f"wrote {rendered.prometheus}, {rendered.alertmanager} and {len(rendered.rules)} rule files")


if __name__ == "__main__":
    main()

