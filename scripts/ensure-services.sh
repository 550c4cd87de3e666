#!/usr/bin/env bash
# Make sure RabbitMQ, PostgreSQL and Redis answer on 127.0.0.1 before the tests run.
# Starts them with the machine's own service commands when they are down, and
# fails (never skips) when they cannot be reached.
set -o errexit -o pipefail -o nounset

RABBITMQ_PORT="${RABBITMQ_PORT:-5672}"
POSTGRES_PORT="${POSTGRES_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"

answers() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for() { # name port seconds
  local name=$1 port=$2 deadline=$((SECONDS + $3))
  until answers 127.0.0.1 "$port"; do
    if ((SECONDS >= deadline)); then
      echo "error: $name does not answer on 127.0.0.1:$port" >&2
      return 1
    fi
    sleep 1
  done
}

if ! answers 127.0.0.1 "$RABBITMQ_PORT"; then
  echo "RabbitMQ is not answering; starting it"
  if command -v rabbitmq-server >/dev/null; then
    rabbitmq-server -detached || true
  else
    echo "error: RabbitMQ is down and rabbitmq-server is not installed" >&2
    exit 1
  fi
fi
if ! answers 127.0.0.1 "$POSTGRES_PORT"; then
  echo "PostgreSQL is not answering; starting it"
  if command -v pg_ctlcluster >/dev/null; then
    for version in /etc/postgresql/*; do
      pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
    done
  else
    echo "error: PostgreSQL is down and pg_ctlcluster is not installed" >&2
    exit 1
  fi
fi
# Redis (the api's response cache) keeps nothing on disk: tests only need it running.
if ! answers 127.0.0.1 "$REDIS_PORT"; then
  echo "Redis is not answering; starting it"
  if command -v redis-server >/dev/null; then
    redis_dir=/var/lib/redis
    [[ -d $redis_dir && -w $redis_dir ]] || redis_dir="$(mktemp -d)"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir "$redis_dir" --logfile "$redis_dir/ensure-services.log" || true
  else
    echo "error: Redis is down and redis-server is not installed" >&2
    exit 1
  fi
fi
wait_for RabbitMQ "$RABBITMQ_PORT" 90
wait_for PostgreSQL "$POSTGRES_PORT" 60
wait_for Redis "$REDIS_PORT" 30
# The AMQP port opens before the broker accepts connections; wait for the app.
if command -v rabbitmqctl >/dev/null; then
  timeout 90 rabbitmqctl await_startup >/dev/null
fi
# Queue depth for dashboards and alerts comes from RabbitMQ's own Prometheus plugin
# (tests/integration/test_metrics_contract.py scrapes it). CI runs RabbitMQ in a container
# with the plugin on; there rabbitmq-plugins is not on the runner, and we only say so.
RABBITMQ_PROMETHEUS_PORT="${RABBITMQ_PROMETHEUS_PORT:-15692}"
if ! answers 127.0.0.1 "$RABBITMQ_PROMETHEUS_PORT"; then
  if command -v rabbitmq-plugins >/dev/null; then
    echo "Enabling RabbitMQ's prometheus plugin (:$RABBITMQ_PROMETHEUS_PORT)"
    rabbitmq-plugins enable rabbitmq_prometheus >/dev/null
    wait_for "RabbitMQ's prometheus plugin" "$RABBITMQ_PROMETHEUS_PORT" 60
  else
    echo "RabbitMQ's prometheus plugin does not answer on :$RABBITMQ_PROMETHEUS_PORT and rabbitmq-plugins" \
      "is not installed here; skipping (enable rabbitmq_prometheus where RabbitMQ runs)"
  fi
fi
echo "RabbitMQ (:$RABBITMQ_PORT), PostgreSQL (:$POSTGRES_PORT) and Redis (:$REDIS_PORT) are up"
