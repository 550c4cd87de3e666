"""Every pod the chart renders meets the Pod Security Standard "restricted", in every ci/ profile.

``restricted_violations`` is the policy, rule by rule, as written in the
Kubernetes docs (concepts/security/pod-security-standards, version "latest"):
the baseline controls plus the restricted ones. It reads the effective value of
each field (a container's securityContext overrides its pod's), covers
containers, initContainers and ephemeralContainers, and is itself tested
against pods broken one rule at a time, so a green suite means the chart
passes, not that the checker is blind.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from chart.rendering import CHART, PROFILES, RESTRICTED_VOLUME_TYPES, Manifests, pod_spec, render

# Baseline "Sysctls": the safe set; any other sysctl is refused.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
NAMESPACE_LABEL = "pod-security.kubernetes.io/enforce: restricted"


def _all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *spec.get("containers", []),
        *spec.get("initContainers", []),
        *spec.get("ephemeralContainers", []),
    ]


def _seccomp_ok(profile: dict[str, Any] | None) -> bool | None:
    """True/False for a set profile (allowed or not), None when unset."""
    if not profile:
        return None
    return profile.get("type") in {"RuntimeDefault", "Localhost"}


def restricted_violations(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> list[str]:
    """Every rule of the restricted Pod Security Standard that a pod spec breaks (empty: it passes)."""
    found: list[str] = []
    pod_ctx = spec.get("securityContext") or {}

    # -- baseline ---------------------------------------------------------------------
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            found.append(f"pod: {key}")
    if (pod_ctx.get("windowsOptions") or {}).get("hostProcess"):
        found.append("pod: windowsOptions.hostProcess")
    for sysctl in pod_ctx.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"pod: unsafe sysctl {sysctl['name']}")
    for name, value in (annotations or {}).items():
        if name.startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            found.append(f"pod: AppArmor annotation {name}={value}")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"pod: volume {volume['name']} is {sorted(kinds)}")

    pod_seccomp = _seccomp_ok(pod_ctx.get("seccompProfile"))
    if pod_seccomp is False:
        found.append(f"pod: seccompProfile {pod_ctx['seccompProfile']}")
    for where, ctx in [("pod", pod_ctx)] + [
        (c["name"], c.get("securityContext") or {}) for c in _all_containers(spec)
    ]:
        selinux = ctx.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            found.append(f"{where}: seLinuxOptions {selinux}")
        apparmor = ctx.get("appArmorProfile")
        if apparmor and apparmor.get("type") not in {"RuntimeDefault", "Localhost"}:
            found.append(f"{where}: appArmorProfile {apparmor}")
        if ctx.get("runAsUser") == 0:
            found.append(f"{where}: runAsUser 0")

    # -- per container: baseline + restricted --------------------------------------------
    for container in _all_containers(spec):
        name = container["name"]
        ctx = container.get("securityContext") or {}
        if ctx.get("privileged"):
            found.append(f"{name}: privileged")
        if (ctx.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"{name}: windowsOptions.hostProcess")
        if ctx.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount {ctx['procMount']}")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                found.append(f"{name}: hostPort {port['hostPort']}")
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        # runAsNonRoot: the container's own value wins; unset falls back to the pod's.
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        seccomp = _seccomp_ok(ctx.get("seccompProfile"))
        if seccomp is False or (seccomp is None and pod_seccomp is not True):
            found.append(f"{name}: seccompProfile is not RuntimeDefault or Localhost")
        capabilities = ctx.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities do not drop ALL")
        added = set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}
        if added:
            found.append(f"{name}: adds capabilities {sorted(added)}")
    return found


def _pod_annotations(workload: dict[str, Any]) -> dict[str, str]:
    meta = workload["metadata"] if workload["kind"] == "Pod" else workload["spec"]["template"]["metadata"]
    return meta.get("annotations") or {}


def test_every_pod_of_every_profile_meets_the_restricted_standard(manifests: Manifests) -> None:
    workloads = manifests.workloads()
    kinds = {w["kind"] for w in workloads}
    # Deployments, the RabbitMQ/PostgreSQL StatefulSets (when built in), the migration Job
    # and the helm test Pods: each kind that runs pods is checked, none skipped.
    assert {"Deployment", "Job", "Pod"} <= kinds, kinds
    broken = {
        f"{w['kind']}/{w['metadata']['name']}": problems
        for w in workloads
        if (problems := restricted_violations(pod_spec(w), _pod_annotations(w)))
    }
    assert broken == {}


def test_the_built_in_statefulsets_are_checked_too() -> None:
    statefulsets = render("default").of_kind("StatefulSet")
    assert {s["metadata"]["name"].rsplit("-", 1)[-1] for s in statefulsets} >= {"rabbitmq", "postgresql"}
    for statefulset in statefulsets:
        assert restricted_violations(pod_spec(statefulset), _pod_annotations(statefulset)) == []


def test_the_kind_model_store_is_a_host_path_volume_that_pods_reach_only_through_a_claim() -> None:
    # Restricted forbids hostPath *pod volumes*; a hostPath PersistentVolume (cluster
    # scoped, created by the installer) mounted through a claim is allowed.
    manifests = render("kind")
    volumes = [pv for pv in manifests.of_kind("PersistentVolume") if "hostPath" in pv["spec"]]
    assert volumes, "the kind profile's model store should be a hostPath PersistentVolume"
    claims = {pvc["metadata"]["name"] for pvc in manifests.of_kind("PersistentVolumeClaim")}
    mounted = set()
    for workload in manifests.workloads():
        for volume in pod_spec(workload).get("volumes", []):
            assert "hostPath" not in volume, workload["metadata"]["name"]
            if "persistentVolumeClaim" in volume:
                mounted.add(volume["persistentVolumeClaim"]["claimName"])
    assert mounted & claims, "pods should mount the model store through its claim"


# -- the checker catches each rule ------------------------------------------------------
def _compliant_pod() -> dict[str, Any]:
    api = render("default").get("Deployment", "api")
    spec = copy.deepcopy(pod_spec(api))
    assert restricted_violations(spec) == []
    return spec


def _first(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["containers"][0].setdefault("securityContext", {})


BREAKAGES = {
    "hostNetwork": lambda s: s.update(hostNetwork=True),
    "hostPID": lambda s: s.update(hostPID=True),
    "hostIPC": lambda s: s.update(hostIPC=True),
    "hostPath volume": lambda s: s.setdefault("volumes", []).append({"name": "h", "hostPath": {"path": "/"}}),
    "nfs volume": lambda s: s.setdefault("volumes", []).append(
        {"name": "n", "nfs": {"server": "x", "path": "/"}}
    ),
    "unsafe sysctl": lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
    "pod runAsUser 0": lambda s: s["securityContext"].update(runAsUser=0),
    "container runAsUser 0": lambda s: _first(s).update(runAsUser=0),
    "container overrides runAsNonRoot": lambda s: _first(s).update(runAsNonRoot=False),
    "no runAsNonRoot anywhere": lambda s: (
        s["securityContext"].pop("runAsNonRoot", None),
        [c.get("securityContext", {}).pop("runAsNonRoot", None) for c in _all_containers(s)],
    ),
    "privileged": lambda s: _first(s).update(privileged=True),
    "privilege escalation unset": lambda s: _first(s).pop("allowPrivilegeEscalation"),
    "privilege escalation": lambda s: _first(s).update(allowPrivilegeEscalation=True),
    "capabilities kept": lambda s: _first(s).update(capabilities={"drop": ["NET_RAW"]}),
    "capability added": lambda s: _first(s).update(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
    "seccomp unconfined in a container": lambda s: _first(s).update(seccompProfile={"type": "Unconfined"}),
    "seccomp nowhere": lambda s: (
        s["securityContext"].pop("seccompProfile", None),
        [c.get("securityContext", {}).pop("seccompProfile", None) for c in _all_containers(s)],
    ),
    "hostPort": lambda s: (
        s["containers"][0].setdefault("ports", []).append({"containerPort": 1, "hostPort": 1})
    ),
    "procMount": lambda s: _first(s).update(procMount="Unmasked"),
    "SELinux user": lambda s: _first(s).update(seLinuxOptions={"user": "system_u"}),
    "AppArmor unconfined": lambda s: _first(s).update(appArmorProfile={"type": "Unconfined"}),
    "Windows hostProcess": lambda s: _first(s).update(windowsOptions={"hostProcess": True}),
    "ephemeral container": lambda s: s.update(ephemeralContainers=[{"name": "debug", "image": "busybox"}]),
}


@pytest.mark.parametrize("rule", sorted(BREAKAGES))
def test_the_checker_refuses_a_pod_that_breaks_one_rule(rule: str) -> None:
    spec = _compliant_pod()
    BREAKAGES[rule](spec)
    assert restricted_violations(spec), f"{rule} was not caught"


def test_the_checker_accepts_what_restricted_allows() -> None:
    spec = _compliant_pod()
    # NET_BIND_SERVICE may be added; a Localhost seccomp profile is allowed; seccomp may be
    # set per container instead of on the pod; a container may repeat the pod's settings.
    _first(spec)["capabilities"] = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    _first(spec)["seccompProfile"] = {"type": "Localhost", "localhostProfile": "p.json"}
    spec["securityContext"]["sysctls"] = [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]
    assert restricted_violations(spec) == []
    assert restricted_violations(spec, {APPARMOR_ANNOTATION + "api": "runtime/default"}) == []
    assert restricted_violations(spec, {APPARMOR_ANNOTATION + "api": "unconfined"})


def test_the_chart_docs_tell_how_to_enforce_restricted_on_the_namespace() -> None:
    readme = (Path(CHART) / "README.md").read_text()
    assert NAMESPACE_LABEL in readme
    assert "kubectl label namespace inference pod-security.kubernetes.io/enforce=restricted" in readme


def test_every_profile_is_rendered_by_this_suite() -> None:
    assert set(PROFILES) >= {"default", "kind", "external", "keda", "production"}
