"""The rendered manifests pass kubernetes-validate --strict and checkov, in every profile."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from chart.rendering import (
    CHART,
    CHECKOV,
    CRD_KINDS,
    HELM,
    KUBERNETES_VALIDATE,
    NAMESPACE,
    ROOT,
    render,
    require,
    values_file,
)

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion), a middle and the newest schema.
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0", "1.37.0"]

# Checks the chart skips, each with its reason in a checkov.io/skip annotation (README,
# "Security checks"). A new skip must be added here on purpose.
ALLOWED_SKIPS = {
    "CKV_K8S_43",  # image digests: tags are pinned, digests optional (image.digest)
    "CKV_K8S_15",  # pull policy Always: pinned tags, IfNotPresent survives a registry outage
    "CKV_K8S_35",  # secrets as env: the services read URLs from env, composed by env expansion
    "CKV_K8S_40",  # uid >= 10000: the official rabbitmq (100) and postgres (70) images' users
    "CKV_K8S_38",  # token mounted: the collector's k8sattributes reads pods
    "CKV_K8S_8",  # liveness probe: helm test pods run to completion
    "CKV_K8S_9",  # readiness probe: helm test pods run to completion
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_built_in_object_passes_kubernetes_validate_strict(
    profile: str, version: str, tmp_path: Path
) -> None:
    manifests = render(profile)
    rendered = tmp_path / f"{profile}.yaml"
    rendered.write_text(manifests.text)
    result = subprocess.run(
        [str(require(KUBERNETES_VALIDATE)), "--strict", "-k", version, str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ERROR" not in output, output
    built_in = [d for d in manifests if d["kind"] not in CRD_KINDS]
    assert output.count(" passed for resource ") == len(built_in), output
    # kubernetes-validate has no schema for CRD kinds: it warns and moves on. Only those may be skipped.
    skipped = [line for line in output.splitlines() if line.startswith("WARN")]
    assert len(skipped) == len(manifests.docs) - len(built_in), skipped
    for line in skipped:
        assert any(f"kind {kind} " in line for kind in CRD_KINDS), line


def test_checkov_finds_no_failed_check_and_no_unjustified_skip(profile: str) -> None:
    require(HELM)
    env = {
        **os.environ,
        # checkov's helm framework calls `helm template`: our helm, in a non-default namespace.
        "PATH": f"{HELM.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HELM_NAMESPACE": NAMESPACE,
    }
    result = subprocess.run(
        [
            str(require(CHECKOV)),
            "--directory",
            str(CHART),
            "--framework",
            "helm",
            "--var-file",
            str(values_file(profile)),
            "--output",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov printed no JSON report (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    results = report["results"]
    failed = [f"{c['check_id']} {c['resource']}" for c in results["failed_checks"]]
    assert not failed, failed
    assert report["summary"]["passed"] > 100, "checkov checked too little: did helm template run?"
    skipped = {c["check_id"] for c in results["skipped_checks"]}
    assert skipped <= ALLOWED_SKIPS, skipped - ALLOWED_SKIPS
    assert result.returncode == 0
