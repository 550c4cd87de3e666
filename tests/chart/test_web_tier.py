"""The web tier's trainer, its settings (trace links, uploads, pages) and the first admin user."""

from __future__ import annotations

import pytest

from chart.rendering import (
    CHART,
    RELEASE,
    Manifests,
    env_of,
    pod_labels,
    pod_spec,
    render,
    render_error,
)

MODELS = "/var/lib/inference/models"
ADMIN_SECRET = ("web.adminUser.enabled=true", "web.adminUser.existingSecret=inference-admin")


def _container(manifests: Manifests, kind: str, suffix: str, name: str | None = None) -> dict:
    spec = pod_spec(manifests.get(kind, suffix))
    containers = spec["containers"] + spec.get("initContainers", [])
    return next(c for c in containers if name is None or c["name"] == name)


def _mounts(container: dict) -> dict[str, dict]:
    return {m["name"]: m for m in container.get("volumeMounts", [])}


def test_trainer_runs_celery_on_the_training_queue_in_the_web_image() -> None:
    manifests = render("default")
    deployment = manifests.get("Deployment", "trainer")
    assert pod_labels(deployment)["app.kubernetes.io/component"] == "trainer"
    assert deployment["spec"]["replicas"] == 1
    container = _container(manifests, "Deployment", "trainer")
    web = _container(manifests, "Deployment", "web")
    assert container["image"] == web["image"] == "ghcr.io/inference-platform/web:0.1.0"
    # The image's workdir is /app/services/web, so config.celery_app is importable; no shell
    # in between, so celery itself receives SIGTERM.
    assert "workingDir" not in container
    command = container["command"]
    assert command[:4] == ["celery", "-A", "config.celery_app", "worker"]
    assert command[command.index("--queues") + 1] == "inference.training"
    assert command[command.index("--concurrency") + 1] == "1"
    assert command[command.index("--loglevel") + 1] == "INFO"
    other = render("default", "rabbitmq.queuePrefix=staging", "trainer.config.concurrency=2")
    command = _container(other, "Deployment", "trainer")["command"]
    assert command[command.index("--queues") + 1] == "staging.training"
    assert command[command.index("--concurrency") + 1] == "2"


def test_trainer_gets_the_same_connections_and_django_settings_as_web() -> None:
    manifests = render("default")
    trainer = env_of(_container(manifests, "Deployment", "trainer"))
    web = env_of(_container(manifests, "Deployment", "web"))
    for name in ("DJANGO_SECRET_KEY", "BROKER_PASSWORD", "BROKER_URL", "DATABASE_PASSWORD", "DATABASE_URL"):
        assert trainer[name] == web[name], name
    assert "secretKeyRef" in trainer["DJANGO_SECRET_KEY"]["valueFrom"]
    config = manifests.config("trainer")
    shared = {k: v for k, v in manifests.config("web").items() if not k.startswith(("WEB_", "OTEL_"))}
    shared["WEB_UPLOAD_MAX_MB"] = manifests.config("web")["WEB_UPLOAD_MAX_MB"]
    assert shared.items() <= config.items()
    assert config["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert config["MODEL_STORE"] == MODELS
    assert config["BROKER_QUEUE_PREFIX"] == "inference"
    # The names config.celery_app reads: hard limit = soft limit + grace.
    assert config["TRAINER_SOFT_TIME_LIMIT_S"] == "3600"
    assert config["TRAINER_HARD_TIME_LIMIT_GRACE_S"] == "60"
    assert config["OMP_NUM_THREADS"] == "2"
    assert config["OTEL_SERVICE_NAME"] == "trainer"
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{RELEASE}-inference-platform-otel-collector:4317"
    assert "k8s.pod.name=$(K8S_POD_NAME)" in trainer["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    envfrom = _container(manifests, "Deployment", "trainer")["envFrom"]
    assert envfrom == [{"configMapRef": {"name": f"{RELEASE}-inference-platform-trainer"}}]


def test_trainer_reads_external_connections_from_the_referenced_secrets() -> None:
    manifests = render("external")
    env = env_of(_container(manifests, "Deployment", "trainer"))
    assert env["BROKER_URL"]["valueFrom"]["secretKeyRef"] == {"name": "inference-broker", "key": "broker-url"}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "inference-database",
        "key": "database-url",
    }
    assert env["DJANGO_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "inference-web"


def test_web_and_trainer_share_the_writable_model_store_where_uploads_live(profile: str) -> None:
    manifests = render(profile)
    claims = set()
    for suffix in ("web", "trainer"):
        spec = pod_spec(manifests.get("Deployment", suffix))
        mount = _mounts(spec["containers"][0])["models"]
        assert mount["mountPath"] == MODELS
        assert not mount.get("readOnly", False), suffix
        (volume,) = [v for v in spec["volumes"] if v["name"] == "models"]
        claims.add(volume["persistentVolumeClaim"]["claimName"])
        media_root = manifests.config(suffix)["DJANGO_MEDIA_ROOT"]
        assert media_root.startswith(f"{MODELS}/"), media_root
    assert len(claims) == 1, "web and the trainer must see the same files"
    worker = pod_spec(manifests.get("Deployment", "worker"))["containers"][0]
    assert _mounts(worker)["models"]["readOnly"] is True


def test_uploads_default_under_the_model_store_and_may_move_within_it() -> None:
    assert render("default").config("trainer")["DJANGO_MEDIA_ROOT"] == f"{MODELS}/uploads"
    moved = render("external")
    assert moved.config("web")["DJANGO_MEDIA_ROOT"] == f"{MODELS}/web-uploads"
    assert moved.config("trainer")["DJANGO_MEDIA_ROOT"] == f"{MODELS}/web-uploads"


@pytest.mark.parametrize("media_root", ["/srv/uploads", f"{MODELS}-other/uploads"])
def test_uploads_outside_the_model_store_are_refused(media_root: str) -> None:
    error = render_error(f"web.config.mediaRoot={media_root}")
    assert "web.config.mediaRoot" in error
    assert "must lie under modelStore.mountPath" in error


def test_trainer_is_hardened_and_has_no_port() -> None:
    manifests = render("default")
    spec = pod_spec(manifests.get("Deployment", "trainer"))
    container = spec["containers"][0]
    assert "ports" not in container
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == f"{RELEASE}-inference-platform-trainer"
    assert manifests.get("ServiceAccount", "trainer")["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsUser"] == 10001
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    # Writable paths are volumes: /tmp (boosters before registration) and the model store.
    assert set(_mounts(container)) == {"tmp", "models"}
    tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["sizeLimit"] == "1Gi"


def test_trainer_probes_are_cheap_exec_checks_of_the_main_process() -> None:
    container = _container(render("default"), "Deployment", "trainer")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        spec = container[probe]
        assert set(spec) - {"periodSeconds", "timeoutSeconds", "failureThreshold"} == {"exec"}, probe
        command = spec["exec"]["command"]
        assert command[:2] == ["sh", "-c"]
        # PID 1 is celery (exec-form command), alive and not stopped or a zombie; no Python
        # start-up, no broker round trip.
        assert "/proc/1/cmdline" in command[2]
        assert "/proc/1/status" in command[2]
        assert "inspect" not in command[2]


def _hard_limit(config: dict[str, str]) -> int:
    return int(config["TRAINER_SOFT_TIME_LIMIT_S"]) + int(config["TRAINER_HARD_TIME_LIMIT_GRACE_S"])


def test_trainer_grace_period_lets_a_running_training_finish(profile: str) -> None:
    manifests = render(profile)
    grace = pod_spec(manifests.get("Deployment", "trainer"))["terminationGracePeriodSeconds"]
    assert grace > _hard_limit(manifests.config("trainer"))


def test_trainer_grace_period_follows_the_limits_it_is_computed_from() -> None:
    custom = render(
        "default",
        "trainer.config.softTimeLimitSeconds=600",
        "trainer.config.hardTimeLimitGraceSeconds=30",
        "trainer.shutdownMarginSeconds=20",
    )
    assert pod_spec(custom.get("Deployment", "trainer"))["terminationGracePeriodSeconds"] == 650
    assert custom.config("trainer")["TRAINER_SOFT_TIME_LIMIT_S"] == "600"
    assert custom.config("trainer")["TRAINER_HARD_TIME_LIMIT_GRACE_S"] == "30"


def test_a_consumer_timeout_at_or_below_the_trainer_hard_limit_is_refused() -> None:
    error = render_error("rabbitmq.consumerTimeoutSeconds=3660")
    assert "must exceed the trainer's hard time limit (3660" in error
    render("default", "rabbitmq.consumerTimeoutSeconds=3661")
    # An external broker has its own consumer_timeout: nothing to compare with.
    render("external", "rabbitmq.consumerTimeoutSeconds=3000")


def test_trainer_has_a_disruption_budget_and_a_network_policy() -> None:
    manifests = render("default")
    selector = manifests.get("Deployment", "trainer")["spec"]["selector"]["matchLabels"]
    assert manifests.get("PodDisruptionBudget", "trainer")["spec"]["selector"]["matchLabels"] == selector
    policy = manifests.get("NetworkPolicy", "trainer")
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in policy["spec"]


def test_trainer_is_absent_when_disabled_and_nothing_refers_to_it() -> None:
    manifests = render("default", "trainer.enabled=false")
    for kind in ("Deployment", "ConfigMap", "ServiceAccount", "PodDisruptionBudget", "NetworkPolicy"):
        assert manifests.find(kind, "trainer") is None, kind
    assert "inference-platform-trainer" not in manifests.text
    assert not any(pod_labels(w)["app.kubernetes.io/component"] == "trainer" for w in manifests.workloads())
    # web still enqueues: runs wait in the queue for a trainer.
    assert "BROKER_URL" in env_of(_container(manifests, "Deployment", "web"))
    # No trainer, so no trainer limit for the consumer timeout to exceed.
    render("default", "trainer.enabled=false", "rabbitmq.consumerTimeoutSeconds=3000")


def test_trace_links_page_size_and_upload_limit_reach_web() -> None:
    assert render("default").config("web")["TRACE_UI_URL"] == ""
    manifests = render(
        "default",
        "web.config.traceUiUrl=http://jaeger.example/trace/{trace_id}",
        "web.config.pageSize=25",
        "web.config.uploadMaxMb=200",
    )
    config = manifests.config("web")
    assert config["TRACE_UI_URL"] == "http://jaeger.example/trace/{trace_id}"
    assert config["WEB_PAGE_SIZE"] == "25"
    assert config["WEB_UPLOAD_MAX_MB"] == "200"
    # The trainer loads the same settings module; it sees the same values.
    assert manifests.config("trainer")["WEB_UPLOAD_MAX_MB"] == "200"
    production = render("production").config("web")
    assert production["TRACE_UI_URL"] == "https://jaeger.example.com/trace/{trace_id}"


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("web.config.traceUiUrl=http://jaeger.example/trace/", "/web/config/traceUiUrl"),
        ("web.config.traceUiUrl=jaeger/{trace_id}", "/web/config/traceUiUrl"),
        ("web.config.pageSize=0", "/web/config/pageSize"),
        ("web.config.uploadMaxMb=0", "/web/config/uploadMaxMb"),
        ("web.config.mediaRoot=uploads", "/web/config/mediaRoot"),
        ("trainer.config.logLevel=verbose", "/trainer/config/logLevel"),
        ("trainer.config.concurrency=0", "/trainer/config/concurrency"),
        ("trainer.config.hardTimeLimitGraceSeconds=0", "/trainer/config/hardTimeLimitGraceSeconds"),
        ("web.adminUser.username=bad name", "/web/adminUser/username"),
    ],
)
def test_schema_refuses_web_tier_values_that_cannot_work(override: str, where: str) -> None:
    error = render_error(override)
    assert "don't meet the specifications of the schema" in error
    assert f"at '{where}'" in error


def test_no_admin_user_step_unless_enabled() -> None:
    for profile in ("default", "kind", "external", "keda"):
        (job,) = render(profile).of_kind("Job")
        names = [c["name"] for c in pod_spec(job)["containers"] + pod_spec(job).get("initContainers", [])]
        assert "create-admin-user" not in names, profile
        assert pod_spec(job)["containers"][0]["name"] == "migrate"


def test_admin_user_is_created_after_migrate_with_the_password_from_the_secret_file() -> None:
    manifests = render("default", *ADMIN_SECRET)
    (job,) = manifests.of_kind("Job")
    spec = pod_spec(job)
    # Init containers run in order, each to completion: the schema exists before the user.
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-database", "migrate"]
    (create,) = spec["containers"]
    assert create["name"] == "create-admin-user"
    assert create["image"] == "ghcr.io/inference-platform/web:0.1.0"
    assert create["command"] == [
        "python",
        "manage.py",
        "create_user",
        "admin",
        "--role",
        "admin",
        "--superuser",
        "--password-file",
        "/run/secrets/admin/password",
    ]
    mount = _mounts(create)["admin-password"]
    assert mount == {"name": "admin-password", "mountPath": "/run/secrets/admin", "readOnly": True}
    (volume,) = [v for v in spec["volumes"] if v["name"] == "admin-password"]
    assert volume["secret"]["secretName"] == "inference-admin"
    assert volume["secret"]["items"] == [{"key": "admin-password", "path": "password"}]
    # Readable by the pod's group only (fsGroup 10001), never world-readable.
    assert volume["secret"]["defaultMode"] & 0o007 == 0
    # Only this container sees the password; it is not in any environment.
    for container in spec["initContainers"]:
        assert "admin-password" not in _mounts(container)
    assert "DJANGO_USER_PASSWORD" not in manifests.text
    # Runs with the Job: after install, and before the new pods of each upgrade.
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


def test_production_profile_creates_its_admin_from_a_referenced_secret_only() -> None:
    manifests = render("production")
    (job,) = manifests.of_kind("Job")
    (create,) = pod_spec(job)["containers"]
    assert create["command"][3] == "platform-admin"
    (volume,) = [v for v in pod_spec(job)["volumes"] if v["name"] == "admin-password"]
    assert volume["secret"]["secretName"] == "inference-admin"
    # The chart renders no Secret for it: the password exists only in the cluster's Secret.
    assert manifests.find("Secret", "admin") is None
    assert not [s for s in manifests.of_kind("Secret") if "admin" in s["metadata"]["name"]]
    profile_text = (CHART / "ci" / "production-values.yaml").read_text()
    assert "password:" not in profile_text.replace("admin-password", "")


def test_admin_password_cannot_be_given_as_a_value() -> None:
    assert "additional properties" in render_error(*ADMIN_SECRET, "web.adminUser.password=hunter2")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("web.adminUser.enabled=true",), "web.adminUser.enabled needs web.adminUser.existingSecret"),
        ((*ADMIN_SECRET, "migrations.enabled=false"), "web.adminUser.enabled needs migrations.enabled"),
    ],
)
def test_admin_user_settings_that_cannot_work_are_refused(overrides: tuple[str, ...], message: str) -> None:
    assert message in render_error(*overrides)


def test_admin_user_job_keeps_the_restricted_pod_standard_and_database_only_egress() -> None:
    manifests = render("default", *ADMIN_SECRET)
    (job,) = manifests.of_kind("Job")
    for container in pod_spec(job)["containers"] + pod_spec(job)["initContainers"]:
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert {"requests", "limits"} <= set(container["resources"])
        assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    assert pod_labels(job)["app.kubernetes.io/component"] == "migrations"
    egress = manifests.get("NetworkPolicy", "migrations")["spec"]["egress"]
    assert {p["port"] for rule in egress for p in rule["ports"]} == {5432}
