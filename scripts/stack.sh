#!/usr/bin/env bash
# Start or stop the local stack (api, web, worker, trainer) in the background.
#   scripts/stack.sh up     migrate, start, wait until ready, print URLs
#   scripts/stack.sh down   stop what `up` started
# Without BROKER_URL/DATABASE_URL it runs on SQLite and a file-based broker
# under var/; with them set, on RabbitMQ and PostgreSQL.
set -o errexit -o pipefail -o nounset

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Absolute: services start from their own directories.
VENV="$(cd "${VENV:-$ROOT/.venv}" && pwd)"
# pid and log files; STACK_RUN_DIR lets a second stack (the e2e run) live beside the demo.
RUN="${STACK_RUN_DIR:-$ROOT/var/run}"
API_PORT="${API_PORT:-8080}"
WEB_PORT="${WEB_PORT:-8000}"
export API_PORT WEB_PORT
# Local runs export no traces unless the caller points OTEL_* at a collector.
export OTEL_TRACES_EXPORTER="${OTEL_TRACES_EXPORTER:-none}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export WORKER_CONCURRENCY="${WORKER_CONCURRENCY:-2}"
# Settings of the trainer, as the web uses (only there: Celery's Django fix-up
# would switch on in the worker too if this were exported).
TRAINER_SETTINGS="${DJANGO_SETTINGS_MODULE:-config.settings.local}"
PREFIX="${BROKER_QUEUE_PREFIX:-inference}"
export PATH="$VENV/bin:$PATH"

running() { # service
  local pidfile="$RUN/$1.pid"
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() { # service dir command...
  local service=$1 dir=$2
  shift 2
  if running "$service"; then
    echo "$service already running (pid $(cat "$RUN/$service.pid"))"
    return
  fi
  (cd "$dir" && exec setsid "$@" >"$RUN/$service.log" 2>&1 </dev/null) &
  echo $! >"$RUN/$service.pid"
}

wait_log() { # service: celery processes have no HTTP port; ready once they log it
  local deadline=$((SECONDS + ${STACK_TIMEOUT:-90}))
  until grep -q "ready\." "$RUN/$1.log" 2>/dev/null; do
    if ! running "$1" || ((SECONDS >= deadline)); then
      echo "error: $1 did not become ready; last lines of $RUN/$1.log:" >&2
      tail -n 30 "$RUN/$1.log" >&2
      return 1
    fi
    sleep 0.5
  done
}

wait_ready() { # service url
  local deadline=$((SECONDS + ${STACK_TIMEOUT:-90}))
  until curl -fsS -o /dev/null "$2" 2>/dev/null; do
    if ! running "$1"; then
      echo "error: $1 exited; last lines of $RUN/$1.log:" >&2
      tail -n 30 "$RUN/$1.log" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "error: $1 not ready at $2 after ${STACK_TIMEOUT:-90}s; see $RUN/$1.log" >&2
      return 1
    fi
    sleep 0.5
  done
}

up() {
  mkdir -p "$RUN"
  python "$ROOT/services/web/manage.py" migrate --noinput -v 0
  start worker "$ROOT/services/worker" celery -A inference_worker.celery_app worker \
    --loglevel INFO --hostname "worker@%h"
  # Training runs from /models/train/, one at a time, off the web processes.
  start trainer "$ROOT/services/web" env DJANGO_SETTINGS_MODULE="$TRAINER_SETTINGS" celery -A config.celery_app worker \
    --loglevel INFO --hostname "trainer@%h" --queues "$PREFIX.training" --concurrency 1
  start api "$ROOT/services/api" gunicorn -c gunicorn.conf.py
  start web "$ROOT/services/web" gunicorn -c gunicorn.conf.py
  wait_ready api "http://127.0.0.1:$API_PORT/readyz"
  wait_ready web "http://127.0.0.1:$WEB_PORT/healthz"
  wait_log worker
  wait_log trainer
  local broker="embedded file broker" database="embedded SQLite"
  [[ -n "${BROKER_URL:-}" ]] && broker="BROKER_URL"
  [[ -n "${DATABASE_URL:-}" ]] && database="DATABASE_URL"
  echo "stack is up (broker: $broker, database: $database)"
  echo "  api:     http://127.0.0.1:$API_PORT   (OpenAPI: /openapi.json, metrics: /metrics)"
  echo "  web:     http://127.0.0.1:$WEB_PORT/   (admin: /admin/)"
  echo "  trainer: consumes $PREFIX.training (training runs from /models/train/)"
  echo "  logs:    $RUN/{api,web,worker,trainer}.log"
}

stop() { # service
  local pidfile="$RUN/$1.pid"
  if ! running "$1"; then
    rm -f "$pidfile"
    return
  fi
  local pid
  pid="$(cat "$pidfile")"
  # TERM the whole session: gunicorn and celery shut their children down warm.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "stopped $1"
}

down() {
  for service in api web worker trainer; do
    stop "$service"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
