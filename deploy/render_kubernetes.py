#!/usr/bin/env python3
"""Render the generated parts of deploy/kubernetes/: the PrometheusRule, the AlertmanagerConfig and the
Grafana dashboards, from monitoring/ (monitoring/kubernetes.py does the translation). Run it after
changing anything under monitoring/, and commit the result:

    .venv/bin/python deploy/render_kubernetes.py [--runbook-url URL] [--grafana-url URL] [--datasource-uid UID]

tests/unit/deploy/test_kubernetes.py fails when the committed files differ from what this renders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "deploy" / "kubernetes" / "components"

if str(REPO) not in sys.path:  # monitoring/ is part of the checkout, not of the installed package
    sys.path.insert(0, str(REPO))

from monitoring.kubernetes import DEFAULT_DATASOURCE_UID, DEFAULT_GRAFANA_URL, write  # noqa: E402
from monitoring.render import RUNBOOK_PLACEHOLDER  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--runbook-url", default=RUNBOOK_PLACEHOLDER,
                        help="address where your team reads docs/runbooks.md (links in Slack messages)")
    parser.add_argument("--grafana-url", default=DEFAULT_GRAFANA_URL,
                        help="Grafana as people open it from Slack (dashboard links)")
    parser.add_argument("--datasource-uid", default=DEFAULT_DATASOURCE_UID,
                        help="uid of the cluster Grafana's Prometheus datasource (kube-prometheus-stack: prometheus)")
    args = parser.parse_args(argv)
    written = write(args.out, runbook_url=args.runbook_url, grafana_url=args.grafana_url,
                    datasource_uid=args.datasource_uid)
    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
