#!/usr/bin/env bash
# The kind path that CI runs (make kind-up / e2e-kind / kind-down):
#   up    create the cluster, build and load the images, install KEDA and the chart, port-forward
#   e2e   register the demo model in the cluster, run tests/e2e against it, then `helm test`
#   down  delete the cluster
set -o errexit -o pipefail -o nounset

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "${VENV:-$ROOT/.venv}" && pwd)"
CLUSTER="${KIND_CLUSTER:-inference-platform}"
NAMESPACE="${KIND_NAMESPACE:-inference}"
RELEASE="${KIND_RELEASE:-ip}"
TAG="${IMAGE_TAG:-dev}"
REGISTRY="${IMAGE_REGISTRY:-ghcr.io/inference-platform}"
KEDA_VERSION="${KEDA_CHART_VERSION:-2.16.1}"
STATE="$ROOT/var/kind"
API_PORT="${E2E_API_PORT:-18080}"
WEB_PORT="${E2E_WEB_PORT:-18000}"
export PATH="$ROOT/.tools/bin:$PATH"

die() {
  echo "error: $*" >&2
  exit 1
}

require() {
  command -v docker >/dev/null || die "docker is required for the kind path (install Docker Engine)"
  docker info >/dev/null 2>&1 || die "docker is installed but no Docker engine answers"
  command -v kind >/dev/null || die "kind is required: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  "$ROOT/scripts/install-tools.sh" >/dev/null
}

pod_of() { # component
  kubectl -n "$NAMESPACE" get pod -l "app.kubernetes.io/component=$1,app.kubernetes.io/instance=$RELEASE" \
    --field-selector=status.phase=Running -o name | sed -n 1p
}

service_of() { # component
  kubectl -n "$NAMESPACE" get service -l "app.kubernetes.io/component=$1,app.kubernetes.io/instance=$RELEASE" \
    -o name | sed -n 1p
}

port_forward() { # component local-port remote-port
  local pidfile="$STATE/port-forward-$1.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    return
  fi
  kubectl -n "$NAMESPACE" port-forward "$(service_of "$1")" "$2:$3" >"$STATE/port-forward-$1.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 60); do
    curl -fsS -o /dev/null "http://127.0.0.1:$2/healthz" 2>/dev/null && return
    sleep 1
  done
  die "port-forward to $1 did not answer; see $STATE/port-forward-$1.log"
}

up() {
  require
  mkdir -p "$STATE/models"
  # The pods run as uid 10001; the shared host directory must be writable to them.
  chmod 0777 "$STATE/models"
  if ! kind get clusters | grep -x "$CLUSTER" >/dev/null; then
    sed "s|__MODEL_STORE_HOST__|$STATE/models|g" "$ROOT/kind/cluster.yaml" |
      kind create cluster --name "$CLUSTER" --config - --wait 180s
  fi
  for service in api web worker; do
    docker build -f "$ROOT/services/$service/Dockerfile" -t "$REGISTRY/$service:$TAG" "$ROOT"
    kind load docker-image --name "$CLUSTER" "$REGISTRY/$service:$TAG"
  done
  helm repo add kedacore https://kedacore.github.io/charts --force-update >/dev/null
  helm upgrade --install keda kedacore/keda --version "$KEDA_VERSION" -n keda --create-namespace --wait
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
  kubectl label namespace "$NAMESPACE" --overwrite \
    pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted
  helm upgrade --install "$RELEASE" "$ROOT/charts/inference-platform" -n "$NAMESPACE" \
    -f "$ROOT/charts/inference-platform/ci/kind-values.yaml" \
    --set "default.image.tag=$TAG" --wait --timeout 10m
  port_forward api "$API_PORT" 8080
  port_forward web "$WEB_PORT" 8000
  echo "api: http://127.0.0.1:$API_PORT   web: http://127.0.0.1:$WEB_PORT/admin/"
}

e2e() {
  require
  port_forward api "$API_PORT" 8080
  port_forward web "$WEB_PORT" 8000
  mkdir -p "$STATE/models/incoming"
  "$VENV/bin/python" -c 'import sys; sys.path.insert(0, "scripts"); from pathlib import Path; import demo; demo.train(Path(sys.argv[1]))' \
    "$STATE/models/incoming/breast_cancer.json"
  chmod a+r "$STATE/models/incoming/breast_cancer.json"
  local web manage password
  web="$(pod_of web)"
  [[ -n "$web" ]] || die "no running web pod in namespace $NAMESPACE"
  manage=(kubectl -n "$NAMESPACE" exec "$web" -- python manage.py)
  "${manage[@]}" register_model --name breast-cancer --stage production \
    --file /var/lib/inference/models/incoming/breast_cancer.json
  E2E_API_KEY="$("${manage[@]}" create_api_key e2e --scopes predict,jobs | tail -n 1)"
  password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
  kubectl -n "$NAMESPACE" exec "$web" -- env DJANGO_SUPERUSER_PASSWORD="$password" \
    python manage.py createsuperuser --noinput --username e2e-admin --email e2e@example.com 2>/dev/null ||
    kubectl -n "$NAMESPACE" exec "$web" -- env NEW_PASSWORD="$password" python manage.py shell -c \
      "import os; from django.contrib.auth import get_user_model; u = get_user_model().objects.get(username='e2e-admin'); u.set_password(os.environ['NEW_PASSWORD']); u.save()"
  E2E_API_URL="http://127.0.0.1:$API_PORT" E2E_WEB_URL="http://127.0.0.1:$WEB_PORT" \
    E2E_API_KEY="$E2E_API_KEY" E2E_MODEL=breast-cancer E2E_ADMIN_USER=e2e-admin E2E_ADMIN_PASSWORD="$password" \
    "$VENV/bin/pytest" -p no:cacheprovider "$ROOT/tests/e2e"
  helm test "$RELEASE" -n "$NAMESPACE" --logs --timeout 5m
}

down() {
  for pidfile in "$STATE"/port-forward-*.pid; do
    [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  command -v kind >/dev/null || die "kind is not installed"
  kind delete cluster --name "$CLUSTER"
}

case "${1:-}" in
  up) up ;;
  e2e) e2e ;;
  down) down ;;
  *)
    echo "usage: $0 up|e2e|down" >&2
    exit 2
    ;;
esac
