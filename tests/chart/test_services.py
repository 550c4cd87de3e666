"""Backing services (built-in or external), the model store, migrations, helm tests and ingress."""

from __future__ import annotations

import base64
import re

from chart.rendering import RELEASE, env_of, pod_spec, render

APP_DEPLOYMENTS = ("api", "web", "trainer", "worker")


def _container(manifests, kind: str, suffix: str) -> dict:
    return pod_spec(manifests.get(kind, suffix))["containers"][0]


def test_built_in_services_compose_urls_from_password_secrets_the_chart_renders() -> None:
    manifests = render("default")
    secrets = {d["metadata"]["name"]: d for d in manifests.of_kind("Secret")}
    for suffix in ("api", "web", "trainer", "worker"):
        env = env_of(_container(manifests, "Deployment", suffix))
        ref = env["BROKER_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["data"]
        assert env["BROKER_URL"]["value"] == (
            f"amqp://inference:$(BROKER_PASSWORD)@{RELEASE}-inference-platform-rabbitmq.inference.svc:5672//"
        )
        # Kubernetes expands $(VAR) only from entries defined earlier in the list.
        names = list(env)
        assert names.index("BROKER_PASSWORD") < names.index("BROKER_URL")
    for suffix in APP_DEPLOYMENTS:
        env = env_of(_container(manifests, "Deployment", suffix))
        ref = env["DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["data"]
        assert env["DATABASE_URL"]["value"].startswith("postgres://inference:$(DATABASE_PASSWORD)@")
    password = base64.b64decode(
        secrets[f"{RELEASE}-inference-platform-rabbitmq"]["data"]["rabbitmq-password"]
    )
    assert re.fullmatch(rb"[A-Za-z0-9]{32}", password), "generated passwords must be URL-safe"
    # Generated credentials survive `helm uninstall`: the volumes that use them do too.
    for suffix in ("rabbitmq", "postgresql", "web"):
        assert (
            secrets[f"{RELEASE}-inference-platform-{suffix}"]["metadata"]["annotations"][
                "helm.sh/resource-policy"
            ]
            == "keep"
        )


def test_only_processes_that_use_the_broker_receive_its_credentials() -> None:
    manifests = render("default")
    # The migration Job and the selftest never publish.
    for workload in manifests.of_kind("Job") + manifests.of_kind("Pod"):
        for container in pod_spec(workload)["containers"] + pod_spec(workload).get("initContainers", []):
            assert not {"BROKER_URL", "BROKER_PASSWORD"} & set(env_of(container)), workload["metadata"][
                "name"
            ]


def test_external_profile_deploys_no_broker_or_database_and_reads_the_referenced_secrets() -> None:
    manifests = render("external")
    assert not manifests.of_kind("StatefulSet")
    assert not manifests.find("Service", "rabbitmq")
    assert not manifests.find("Service", "postgresql")
    # Nothing generated: every credential is referenced.
    assert not manifests.of_kind("Secret")
    for suffix in ("api", "worker"):
        env = env_of(_container(manifests, "Deployment", suffix))
        assert env["BROKER_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "inference-broker",
            "key": "broker-url",
        }
    for suffix in APP_DEPLOYMENTS:
        env = env_of(_container(manifests, "Deployment", suffix))
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "inference-database",
            "key": "database-url",
        }
    web = env_of(_container(manifests, "Deployment", "web"))
    assert web["DJANGO_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "inference-web",
        "key": "secret-key",
    }
    claim = pod_spec(manifests.get("Deployment", "web"))["volumes"][-1]
    assert claim["persistentVolumeClaim"]["claimName"] == "inference-models"
    assert not manifests.of_kind("PersistentVolumeClaim")


def test_external_urls_given_as_values_are_stored_in_a_secret_not_in_the_pod_spec() -> None:
    manifests = render(
        "default",
        "rabbitmq.enabled=false",
        "rabbitmq.external.url=amqps://u:p@mq.example.com:5671/x",
        "postgresql.enabled=false",
        "postgresql.external.url=postgres://u:p@db.example.com:5432/x",
    )
    secret = manifests.get("Secret", "rabbitmq-external")
    assert base64.b64decode(secret["data"]["broker-url"]) == b"amqps://u:p@mq.example.com:5671/x"
    assert "u:p@" not in manifests.get("Deployment", "api").__repr__()
    assert manifests.get("Secret", "postgresql-external")


def test_missing_external_connection_settings_are_refused() -> None:
    from chart.rendering import render_error

    assert "rabbitmq.external.existingSecret" in render_error("rabbitmq.enabled=false")
    assert "postgresql.external.existingSecret" in render_error("postgresql.enabled=false")


def test_built_in_rabbitmq_enables_prometheus_metrics_and_survives_restarts() -> None:
    manifests = render("default")
    config = manifests.config("rabbitmq")
    assert "rabbitmq_prometheus" in config["enabled_plugins"]
    assert "prometheus.tcp.port = 15692" in config["rabbitmq.conf"]
    statefulset = manifests.get("StatefulSet", "rabbitmq")
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    container = pod_spec(statefulset)["containers"][0]
    assert container["livenessProbe"]["exec"]["command"][:2] == ["rabbitmq-diagnostics", "-q"]
    assert container["image"].startswith("docker.io/library/rabbitmq:3.13.")
    # The alpine image's rabbitmq user; fsGroup makes the volume writable for it.
    assert pod_spec(statefulset)["securityContext"]["runAsUser"] == 100
    assert pod_spec(statefulset)["securityContext"]["fsGroup"] == 101


def test_built_in_postgresql_keeps_pgdata_in_a_subdirectory_of_its_volume() -> None:
    statefulset = render("default").get("StatefulSet", "postgresql")
    container = pod_spec(statefulset)["containers"][0]
    env = env_of(container)
    assert env["PGDATA"]["value"] == "/var/lib/postgresql/data/pgdata"
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert pod_spec(statefulset)["securityContext"]["runAsUser"] == 70


def test_model_store_is_shared_read_write_by_web_and_read_only_by_workers() -> None:
    manifests = render("keda")
    claim = manifests.get("PersistentVolumeClaim", "models")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for suffix, read_only in [("web", False), ("trainer", False), ("worker", True), ("worker-gpu", True)]:
        spec = pod_spec(manifests.get("Deployment", suffix))
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "models")
        assert mount["mountPath"] == "/var/lib/inference/models"
        assert mount.get("readOnly", False) is read_only
        volume = next(v for v in spec["volumes"] if v["name"] == "models")
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert manifests.config(suffix)["MODEL_STORE"] == "/var/lib/inference/models"


def test_kind_model_store_is_a_host_directory_behind_a_claim_so_pods_stay_restricted() -> None:
    manifests = render("kind")
    (volume,) = manifests.of_kind("PersistentVolume")
    assert volume["spec"]["hostPath"]["path"] == "/var/lib/inference/models"
    claim = manifests.get("PersistentVolumeClaim", "models")
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
    assert volume["spec"]["claimRef"] == {"namespace": "inference", "name": claim["metadata"]["name"]}
    for workload in manifests.workloads():
        assert all("hostPath" not in v for v in pod_spec(workload).get("volumes", []))


def test_migrations_run_after_install_and_before_each_upgrade_once_the_database_answers() -> None:
    manifests = render("default")
    (job,) = manifests.of_kind("Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = pod_spec(job)
    (wait,) = spec["initContainers"]
    assert "pg_isready" in wait["command"][-1]
    assert "DATABASE_URL" in env_of(wait)
    migrate = spec["containers"][0]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert migrate["image"] == "ghcr.io/inference-platform/web:0.1.0"
    assert job["spec"]["activeDeadlineSeconds"] > 0


def test_helm_tests_check_api_readiness_then_run_one_real_prediction() -> None:
    manifests = render("default")
    pods = {
        d["metadata"]["name"].removeprefix(f"{RELEASE}-inference-platform-"): d
        for d in manifests.of_kind("Pod")
    }
    assert set(pods) == {"test-api-ready", "test-prediction"}
    for pod in pods.values():
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    ready = pod_spec(pods["test-api-ready"])["containers"][0]
    assert ready["command"][:2] == ["python", "-c"]
    assert f"http://{RELEASE}-inference-platform-api:8080/readyz" in ready["command"][2]
    selftest = pod_spec(pods["test-prediction"])["containers"][0]
    assert selftest["command"][:5] == [
        "python",
        "manage.py",
        "selftest",
        "--api-url",
        f"http://{RELEASE}-inference-platform-api:8080",
    ]
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY"} <= set(env_of(selftest))
    assert any(m["name"] == "models" for m in selftest["volumeMounts"])
    readiness_weight = int(pods["test-api-ready"]["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert int(pods["test-prediction"]["metadata"]["annotations"]["helm.sh/hook-weight"]) > readiness_weight


def test_no_prediction_test_when_the_model_store_is_not_shared() -> None:
    manifests = render("default", "modelStore.type=emptyDir")
    assert {d["metadata"]["name"] for d in manifests.of_kind("Pod")} == {
        f"{RELEASE}-inference-platform-test-api-ready"
    }


def test_ingress_routes_api_paths_to_the_api_and_everything_else_to_web() -> None:
    manifests = render("production")
    (ingress,) = manifests.of_kind("Ingress")
    assert ingress["spec"]["tls"] == [
        {"secretName": "inference-example-com-tls", "hosts": ["inference.example.com"]}
    ]
    (rule,) = ingress["spec"]["rules"]
    routes = {p["path"]: p["backend"]["service"]["name"].rsplit("-", 1)[1] for p in rule["http"]["paths"]}
    assert routes == {"/v1": "api", "/v2": "api", "/openapi.json": "api", "/": "web"}
    assert not render("default").of_kind("Ingress")


def test_web_redirects_to_https_only_behind_a_tls_ingress() -> None:
    production = render("production").config("web")
    assert production["DJANGO_SECURE_SSL_REDIRECT"] == "true"
    assert "inference.example.com" in production["DJANGO_ALLOWED_HOSTS"].split(",")
    assert production["DJANGO_CSRF_TRUSTED_ORIGINS"] == "https://inference.example.com"
    plain = render("default").config("web")
    assert plain["DJANGO_SECURE_SSL_REDIRECT"] == "false"
    assert f"{RELEASE}-inference-platform-web" in plain["DJANGO_ALLOWED_HOSTS"].split(",")
    assert plain["DJANGO_SETTINGS_MODULE"] == "config.settings.production"


def test_apps_export_traces_to_the_collector_or_turn_tracing_off() -> None:
    with_collector = render("default")
    for suffix in APP_DEPLOYMENTS:
        config = with_collector.config(suffix)
        assert (
            config["OTEL_EXPORTER_OTLP_ENDPOINT"]
            == f"http://{RELEASE}-inference-platform-otel-collector:4317"
        )
        assert config["OTEL_TRACES_EXPORTER"] == "otlp"
        env = env_of(_container(with_collector, "Deployment", suffix))
        assert "k8s.pod.name=$(K8S_POD_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    without = render("default", "otelCollector.enabled=false")
    assert without.config("api")["OTEL_TRACES_EXPORTER"] == "none"
    assert not without.find("Deployment", "otel-collector")
    elsewhere = render(
        "default", "otelCollector.enabled=false", "otel.endpoint=http://tempo.observability:4317"
    )
    assert elsewhere.config("worker")["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://tempo.observability:4317"


def test_collector_rbac_is_namespaced_and_read_only() -> None:
    manifests = render("default")
    assert not manifests.of_kind("ClusterRole")
    (role,) = manifests.of_kind("Role")
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert "*" not in rule["resources"]
    config = manifests.config("otel-collector")["config.yaml"]
    assert "namespace: inference" in config
    assert "memory_limiter" in config
    assert "k8sattributes" in config
    assert "batch" in config
