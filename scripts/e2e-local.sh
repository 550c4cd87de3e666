#!/usr/bin/env bash
# Run the e2e suite (tests/e2e) against the local process stack on RabbitMQ
# and PostgreSQL: the same suite GitHub Actions runs against a kind cluster.
# Creates its own database, vhost, model store and ports; removes them after.
set -o errexit -o pipefail -o nounset

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "${VENV:-$ROOT/.venv}" && pwd)"
PY="$VENV/bin/python"
RABBITMQCTL="${RABBITMQCTL:-rabbitmqctl}"
ADMIN_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BROKER_BASE="${TEST_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672/}"
RUN_ID="e2e_$(date +%s)_$$"
WORK="$(mktemp -d)"

export STACK_RUN_DIR="$WORK/run"
export MODEL_STORE="$WORK/models"
with_path() { # url path: the URL with its path (database or vhost) replaced
  "$PY" -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1])._replace(path="/" + sys.argv[2]).geturl())' "$1" "$2"
}
DATABASE_URL="$(with_path "$ADMIN_DATABASE_URL" "$RUN_ID")"
BROKER_URL="$(with_path "$BROKER_BASE" "$RUN_ID")"
export DATABASE_URL BROKER_URL
export API_PORT="${E2E_API_PORT:-18080}" WEB_PORT="${E2E_WEB_PORT:-18000}"
export E2E_API_URL="http://127.0.0.1:$API_PORT" E2E_WEB_URL="http://127.0.0.1:$WEB_PORT"
export API_CACHE_TTL_S=1
# Prediction pages link each trace here (tests/browser checks the link).
export TRACE_UI_URL="${TRACE_UI_URL:-http://127.0.0.1:16686/trace/{trace_id\}}"

sql() {
  "$PY" -c 'import sys, psycopg; psycopg.connect(sys.argv[1], autocommit=True).execute(sys.argv[2])' \
    "$ADMIN_DATABASE_URL" "$1"
}

cleanup() {
  VENV="$VENV" "$ROOT/scripts/stack.sh" down || true
  # shellcheck disable=SC2086  # RABBITMQCTL may be a command with arguments
  $RABBITMQCTL -q delete_vhost "$RUN_ID" >/dev/null 2>&1 || true
  sql "DROP DATABASE IF EXISTS \"$RUN_ID\" WITH (FORCE)" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

sql "CREATE DATABASE \"$RUN_ID\""
# shellcheck disable=SC2086
$RABBITMQCTL -q add_vhost "$RUN_ID"
# shellcheck disable=SC2086
$RABBITMQCTL -q set_permissions -p "$RUN_ID" guest '.*' '.*' '.*'

eval "$("$PY" "$ROOT/scripts/demo.py" --prepare-only)"
VENV="$VENV" "$ROOT/scripts/stack.sh" up
# Extra arguments (e.g. tests/browser) are passed to pytest: one stack for both suites.
cd "$ROOT"
"$VENV/bin/pytest" -p no:cacheprovider tests/e2e "$@"
