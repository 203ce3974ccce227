"""docs/bring-your-own-model.md works as written: every code block on the page runs, in order, as one
shell script (Python blocks through `python -`), from a trained model to a running stack with alert
rules loaded, a rollback and `driftwatch down`. The only changes: the documented default ports are
replaced by free ones (other tests run at the same time), and the drift check runs every 3 s."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import free_port, require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "bring-your-own-model.md"
# The stack's default ports and the DRIFTWATCH_* variables that move them (driftwatch/stack.py).
PORTS = {"8000": "SERVING_PORT", "9101": "DRIFT_PORT", "9102": "WEBHOOK_PORT", "9103": "QUALITY_PORT",
         "9090": "PROMETHEUS_PORT", "9093": "ALERTMANAGER_PORT", "9199": "SLACK_SINK_PORT"}


def blocks(text: str) -> list[tuple[str, str]]:
    return [(m["lang"], m["body"]) for m in re.finditer(r"```(?P<lang>python|sh)\n(?P<body>.*?)```", text, re.S)]


def script(text: str, ports: dict[str, int]) -> str:
    lines = ["set -euo pipefail"]
    for lang, body in blocks(text):
        for default, port in ports.items():
            body = body.replace(f"127.0.0.1:{default}", f"127.0.0.1:{port}")
        lines.append(f"python - <<'DOC_PYTHON'\n{body}DOC_PYTHON" if lang == "python" else body)
    return "\n".join(lines) + "\n"


def test_the_page_has_the_steps_it_promises() -> None:
    found = blocks(DOC.read_text())
    assert [lang for lang, _ in found].count("python") == 2
    commands = "\n".join(body for lang, body in found if lang == "sh")
    for command in ("driftwatch register", "driftwatch versions", "driftwatch up", "driftwatch rollback",
                    "driftwatch down", "/predict", "/invocations", "/metrics"):
        assert command in commands


def test_every_command_in_the_bring_your_own_model_page_runs(tmp_path: Path) -> None:
    for name in ("prometheus", "prometheus-alertmanager"):
        require_binary(name)
    ports = {default: free_port() for default in PORTS}
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DRIFTWATCH_", "MLFLOW_"))}
    env.update({"PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
                "DRIFTWATCH_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)})
    env.update({f"DRIFTWATCH_{name}": str(ports[default]) for default, name in PORTS.items()})
    env["DRIFTWATCH_DRIFT_INTERVAL_SECONDS"] = "3"  # the first drift check in 3 s rather than 30 s
    path = tmp_path / "doc.sh"
    path.write_text(script(DOC.read_text(), ports))
    try:
        done = subprocess.run(["bash", str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900, check=False)
    finally:
        subprocess.run(["driftwatch", "down"], cwd=tmp_path, env={**env, "DRIFTWATCH_MODEL_NAME": "churn"},
                       capture_output=True, timeout=120, check=False)
    log = (tmp_path / "stack.log").read_text(errors="replace")[-3000:] if (tmp_path / "stack.log").exists() else ""
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}\nstack.log:\n{log}"
    out = done.stdout
    assert "registered churn v1 (classification)" in out and "promoted v1" in out
    assert re.search(r'"class_id":"(yes|no)"', out), out[-2000:]
    assert 'predicted_class="yes"' in out or 'predicted_class="no"' in out
    assert '"name":"FeatureDrift"' in out
    assert "rolled back churn: now serving v1, v2 quarantined" in out
