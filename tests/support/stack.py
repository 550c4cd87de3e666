"""Start the real api (gunicorn), worker and trainer (celery) processes for black-box tests."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MANAGE = [sys.executable, str(ROOT / "services" / "web" / "manage.py")]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    """Run a Django management command; return its last stdout line."""
    result = subprocess.run([*MANAGE, *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


@dataclass
class Process:
    """A service process in its own session (so signals reach its children)."""

    name: str
    popen: subprocess.Popen
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    #: Port of the process's Prometheus /metrics server (workers), 0 if it has none.
    metrics_port: int = 0

    @property
    def metrics_url(self) -> str:
        """URL of the process's /metrics (workers only)."""
        if not self.metrics_port:
            raise AssertionError(f"{self.name} serves no metrics")
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, wait, then SIGKILL what is left."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        self.signal(signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(5)

    def tail(self, lines: int = 40) -> str:
        """The end of the process log, for failure messages."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _spawn(name: str, args: list[str], cwd: Path, env: dict[str, str], log: Path) -> Process:
    handle = log.open("ab")
    popen = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Process(name, popen, log)


@dataclass
class Stack:
    """One api + worker pair sharing a queue prefix."""

    env: dict[str, str]
    logs: Path
    prefix: str
    api_port: int = field(default_factory=free_port)
    api: Process | None = None
    workers: list[Process] = field(default_factory=list)
    trainer: Process | None = None

    @property
    def url(self) -> str:
        """Base URL of the api."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def worker_metrics_url(self) -> str:
        """/metrics of the first worker (all its pool processes aggregated)."""
        return self.workers[0].metrics_url

    def service_env(self, **extra: str) -> dict[str, str]:
        """Environment of a service process of this stack."""
        return {**self.env, "BROKER_QUEUE_PREFIX": self.prefix, "API_PORT": str(self.api_port), **extra}

    def start_worker(self, concurrency: int = 2, wait: bool = True, pool: str = "", **extra: str) -> Process:
        """Start a celery worker (``pool``: Celery's ``--pool``, prefork if empty); wait until it consumes."""
        index = len(self.workers)
        log = self.logs / f"{self.prefix}-worker{index}.log"
        args = [
            str(BIN / "celery"),
            "-A",
            "inference_worker.celery_app",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{self.prefix}-{index}@%h",
            "--without-mingle",
            "--without-gossip",
            *(["--pool", pool] if pool else []),
        ]
        probes = {
            "WORKER_HEARTBEAT_FILE": str(self.logs / f"{self.prefix}-worker{index}.heartbeat"),
            "WORKER_READY_FILE": str(self.logs / f"{self.prefix}-worker{index}.ready"),
            "WORKER_METRICS_PORT": str(free_port()),
        }
        env = self.service_env(**{**probes, **extra})
        worker = _spawn(f"worker{index}", args, ROOT / "services" / "worker", env, log)
        worker.env = env
        worker.metrics_port = int(env["WORKER_METRICS_PORT"])
        self.workers.append(worker)
        if wait:
            wait_until(lambda: " ready." in worker.log.read_text(errors="replace"), 60, worker)
        return worker

    def start_api(self, workers: int = 2, ready: bool = True, **extra: str) -> Process:
        """Start gunicorn with the api; wait until /readyz (or only /healthz) answers 200."""
        log = self.logs / f"{self.prefix}-api.log"
        env = self.service_env(API_WORKERS=str(workers), **extra)
        self.api = _spawn(
            "api", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"], ROOT / "services" / "api", env, log
        )
        wait_until(lambda: _answers(f"{self.url}/readyz" if ready else f"{self.url}/healthz"), 60, self.api)
        return self.api

    def start_trainer(self, **extra: str) -> Process:
        """Start the web tier's trainer (celery on ``<prefix>.training``, one run at a time); wait for it."""
        log = self.logs / f"{self.prefix}-trainer.log"
        args = [
            str(BIN / "celery"),
            "-A",
            "config.celery_app",
            "worker",
            "--loglevel",
            "INFO",
            "--queues",
            f"{self.prefix}.training",
            "--concurrency",
            "1",
            "--hostname",
            f"{self.prefix}-trainer@%h",
            "--without-mingle",
            "--without-gossip",
        ]
        env = self.service_env(DJANGO_SETTINGS_MODULE="config.settings.local", DJANGO_DEBUG="false", **extra)
        self.trainer = _spawn("trainer", args, ROOT / "services" / "web", env, log)
        self.trainer.env = env
        trainer = self.trainer
        wait_until(lambda: " ready." in trainer.log.read_text(errors="replace"), 60, trainer)
        return trainer

    def start_web(self, workers: int = 2, **extra: str) -> tuple[Process, str]:
        """Start the web tier under gunicorn on a free port, as in a pod; wait for it; (process, url)."""
        port = free_port()
        env = self.service_env(
            WEB_PORT=str(port),
            WEB_WORKERS=str(workers),
            DJANGO_SETTINGS_MODULE="config.settings.local",
            DJANGO_DEBUG="false",
            **extra,
        )
        log = self.logs / f"{self.prefix}-web.log"
        web = _spawn(
            "web", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"], ROOT / "services" / "web", env, log
        )
        web.env = env
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/healthz"), 60, web)
        return web, url

    def stop(self) -> None:
        """Stop every process of the stack."""
        others = [process for process in (self.api, self.trainer) if process is not None]
        for process in [*self.workers, *others]:
            process.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl; ``RABBITMQCTL`` overrides the command (CI: ``docker exec rabbitmq rabbitmqctl``)."""
    command = [*shlex.split(os.environ.get("RABBITMQCTL", "rabbitmqctl")), "-q", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr or result.stdout}")
    return result.stdout


#: The shared servers; each run gets a database and vhosts of its own on them.
ADMIN_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BROKER_BASE_URL = os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{path}"))


@contextlib.contextmanager
def scratch_backends(database: str, vhosts: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    """Create a PostgreSQL database and RabbitMQ vhosts of this run's own; drop them afterwards.

    Yields the database URL and one broker URL per vhost, so parallel runs on
    the shared servers never see each other's tables, queues or messages.
    """
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    created: list[str] = []
    try:
        for vhost in vhosts:
            rabbitmqctl("add_vhost", vhost)
            created.append(vhost)
            rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield _with_path(ADMIN_DATABASE_URL, database), [_with_path(BROKER_BASE_URL, v) for v in vhosts]
    finally:
        for vhost in created:
            with contextlib.suppress(RuntimeError):
                rabbitmqctl("delete_vhost", vhost)
        with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def queue_depth(broker_url: str, queue: str) -> int:
    """Messages in ``queue`` (ready + unacknowledged) on the vhost of ``broker_url``."""
    vhost = broker_url.rsplit("/", 1)[1] or "/"
    out = rabbitmqctl("list_queues", "-p", vhost, "name", "messages")
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == queue:
            return int(parts[1])
    return 0


def wait_until(condition, timeout: float, process: Process | None = None) -> None:
    """Poll ``condition`` until true; fail with the process log on timeout or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.popen.poll() is not None:
            raise AssertionError(f"{process.name} exited early:\n{process.tail()}")
        time.sleep(0.2)
    detail = f":\n{process.tail()}" if process is not None else ""
    raise AssertionError(f"condition not met within {timeout}s{detail}")
