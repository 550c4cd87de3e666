"""Render charts/inference-platform with helm and read the manifests (shared by tests/chart).

The suite needs no cluster. It calls the pinned tools the project installs:
  .tools/bin/helm                      scripts/install-tools.sh
  .tools/venv/bin/kubernetes-validate  requirements/tools.txt (with checkov and PyYAML)
A missing tool fails the suite with the command that installs it; nothing is skipped.
"""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "inference-platform"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
PROFILES = [path.name.removesuffix("-values.yaml") for path in CI_VALUES]
HELM = ROOT / ".tools" / "bin" / "helm"
TOOLS_VENV = ROOT / ".tools" / "venv" / "bin"
KUBERNETES_VALIDATE = TOOLS_VENV / "kubernetes-validate"
CHECKOV = TOOLS_VENV / "checkov"
TOOLS_PYTHON = TOOLS_VENV / "python"

RELEASE = "ip"
NAMESPACE = "inference"

_TOOLS_VENV_HELP = "python3 -m venv .tools/venv && .tools/venv/bin/pip install -r requirements/tools.txt"
INSTALL_HELP = {
    HELM: "scripts/install-tools.sh",
    KUBERNETES_VALIDATE: _TOOLS_VENV_HELP,
    CHECKOV: _TOOLS_VENV_HELP,
    TOOLS_PYTHON: _TOOLS_VENV_HELP,
}

# Kinds that need a CRD; a plain install must render none of them.
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule", "PodMonitor"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "Pod"}


def require(tool: Path) -> Path:
    """Return the tool's path, or fail the test with the command that installs it."""
    if not tool.exists():
        pytest.fail(f"{tool.relative_to(ROOT)} is missing: run `{INSTALL_HELP[tool]}` in {ROOT}")
    return tool


def values_file(profile: str) -> Path:
    """The ci/ values file of a profile (default, kind, external, keda, production)."""
    return CHART / "ci" / f"{profile}-values.yaml"


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with the given arguments; the caller checks the result."""
    return subprocess.run([str(require(HELM)), *args], capture_output=True, text=True, check=False, cwd=ROOT)


def yaml_documents(text: str) -> list[Any]:
    """Parse a multi-document YAML stream (PyYAML of the tools environment, .venv has none)."""
    script = "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)"
    result = subprocess.run(
        [str(require(TOOLS_PYTHON)), "-c", script], input=text, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"could not parse YAML: {result.stderr}")
    return json.loads(result.stdout)


@dataclass(frozen=True)
class Manifests:
    """The objects one `helm template` rendered, with finders the tests share."""

    docs: tuple[dict[str, Any], ...]
    text: str

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.docs)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every object of a kind."""
        return [d for d in self.docs if d["kind"] == kind]

    def kinds(self) -> set[str]:
        """The kinds rendered."""
        return {d["kind"] for d in self.docs}

    def get(self, kind: str, suffix: str) -> dict[str, Any]:
        """The object <release>-inference-platform-<suffix> of a kind (fails if absent)."""
        name = f"{RELEASE}-inference-platform-{suffix}"
        for doc in self.of_kind(kind):
            if doc["metadata"]["name"] == name:
                return doc
        pytest.fail(
            f"no {kind} {name}; rendered {kind}s: {[d['metadata']['name'] for d in self.of_kind(kind)]}"
        )

    def find(self, kind: str, suffix: str) -> dict[str, Any] | None:
        """The object or None."""
        name = f"{RELEASE}-inference-platform-{suffix}"
        return next((d for d in self.of_kind(kind) if d["metadata"]["name"] == name), None)

    def workloads(self) -> list[dict[str, Any]]:
        """Objects that run pods: Deployments, StatefulSets, Jobs (hooks) and Pods (helm tests)."""
        return [d for d in self.docs if d["kind"] in WORKLOAD_KINDS]

    def config(self, suffix: str) -> dict[str, str]:
        """Data of the ConfigMap <fullname>-<suffix>."""
        return self.get("ConfigMap", suffix)["data"]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a workload (a Pod's own spec, else its template's)."""
    return workload["spec"] if workload["kind"] == "Pod" else workload["spec"]["template"]["spec"]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    """The labels its pods carry."""
    meta = workload["metadata"] if workload["kind"] == "Pod" else workload["spec"]["template"]["metadata"]
    return meta.get("labels", {})


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's env entries by name."""
    return {entry["name"]: entry for entry in container.get("env", [])}


def is_long_running(workload: dict[str, Any]) -> bool:
    """Deployments and StatefulSets serve; hook Jobs and helm test Pods run to completion."""
    return workload["kind"] in {"Deployment", "StatefulSet"}


@functools.cache
def _render(files: tuple[str, ...], sets: tuple[str, ...]) -> Manifests:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for file in files:
        args += ["-f", file]
    for item in sets:
        args += ["--set", item]
    result = run_helm(*args)
    if result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return Manifests(tuple(yaml_documents(result.stdout)), result.stdout)


def render(profile: str | None = "default", *sets: str) -> Manifests:
    """Render the chart with a ci/ profile and --set overrides (cached: tests must not mutate)."""
    files = (str(values_file(profile)),) if profile else ()
    return _render(files, tuple(sets))


def render_error(*sets: str, profile: str = "default") -> str:
    """Render with overrides that must be refused; return helm's error message."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values_file(profile))]
    for item in sets:
        args += ["--set", item]
    result = run_helm(*args)
    assert result.returncode != 0, f"helm accepted {sets}, expected a refusal"
    return result.stderr


#: Volume types the "restricted" Pod Security Standard allows; anything else (hostPath above all) is refused.
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
