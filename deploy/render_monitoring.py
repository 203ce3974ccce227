#!/usr/bin/env python3
"""Render deploy/monitoring/: the Prometheus and Alertmanager configuration docker-compose.yml mounts.

The sources are under monitoring/ (written for the 127.0.0.1 stack); monitoring/render.py swaps in
the compose service names, the secrets under /run/secrets/ and the links people click. Run this
after changing anything under monitoring/, and commit the result:

    .venv/bin/python deploy/render_monitoring.py [--runbook-url URL]

tests/unit/deploy/ fail when the committed files differ from what this renders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "deploy" / "monitoring"

if str(REPO) not in sys.path:  # monitoring/ is part of the checkout, not of the installed package
    sys.path.insert(0, str(REPO))

from monitoring.render import PRESETS, RUNBOOK_PLACEHOLDER, RenderedConfig, render_stack_config  # noqa: E402

# Where Slack links to the runbooks point. The committed render keeps the sources' placeholder
# (the project has no public documentation address yet); a team renders its own with --runbook-url.
RUNBOOK_URL = RUNBOOK_PLACEHOLDER


def render(out: Path = OUT, *, runbook_url: str = RUNBOOK_URL) -> RenderedConfig:
    """The compose preset of monitoring/render.py, in production timing, Slack URL from its secret file."""
    preset = dict(PRESETS["compose"])
    slack_url_file = preset.pop("slack_url_file")
    return render_stack_config(out, slack_url_file=slack_url_file, slack_fallback_url=None, timing="production",
                               runbook_url=runbook_url, **preset)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--runbook-url", default=RUNBOOK_URL,
                        help="address where your team reads docs/runbooks.md (links in Slack messages)")
    args = parser.parse_args(argv)
    rendered = render(args.out, runbook_url=args.runbook_url)
    print(f"wrote {rendered.prometheus}, {rendered.alertmanager} and {len(rendered.rules)} rule files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
