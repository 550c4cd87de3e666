"""A private RabbitMQ node for tests that stop and start the broker.

The machine's shared broker (port 5672) serves every other suite, so a test
that restarts "RabbitMQ" starts its own node: its own node name, ports, data
directory and Erlang cookie (through ``HOME``). Stopping and starting it again
on the same data directory keeps durable queues and persistent messages, as a
pod restart on its persistent volume does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

#: The server and CLI scripts; the /usr/sbin wrappers would switch to the rabbitmq user.
RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))

# The CLI tools open their own Erlang distribution listener in 35672-35682:
# a node port picked there would collide with a concurrent rabbitmqctl.
_CLI_DIST_PORTS = range(35672, 35683)


def rabbitmq_available() -> bool:
    """True when a RabbitMQ server can be started on this machine."""
    return (RABBITMQ_BIN / "rabbitmq-server").exists() or shutil.which("rabbitmq-server") is not None


def _free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _CLI_DIST_PORTS:
            return port


def _executable(name: str) -> str:
    local = RABBITMQ_BIN / name
    return str(local) if local.exists() else name


class RabbitMQNode:
    """One RabbitMQ node on its own ports and data directory; management plugins off."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"faults-{uuid.uuid4().hex[:8]}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port()
        self.process: subprocess.Popen | None = None
        base.mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        # Guest may connect from anywhere the node listens (127.0.0.1 only).
        (base / "rabbitmq.conf").write_text("loopback_users = none\n")
        (base / "rabbitmq-env.conf").write_text("")

    @property
    def url(self) -> str:
        """AMQP URL of the node's default vhost."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        env = {
            **os.environ,
            # The Erlang cookie lives in $HOME: server and CLI share it, the shared node's stays apart.
            "HOME": str(self.base),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
        }
        env.pop("RABBITMQ_ENABLED_PLUGINS", None)
        return env

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``rabbitmqctl -n <node> ...`` against this node."""
        command = [_executable("rabbitmqctl"), "-q", "-n", self.name, *args]
        return subprocess.run(command, env=self._env(), capture_output=True, text=True, timeout=timeout)

    def start(self, timeout: float = 90) -> None:
        """Start the node (in the foreground, in its own session) and wait until it accepts clients."""
        log = (self.base / "server.log").open("ab")
        self.process = subprocess.Popen(
            [_executable("rabbitmq-server")],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"rabbitmq-server exited early:\n{self.tail()}")
            # await_startup fails at once while the node is not registered yet: poll it.
            if self.ctl("await_startup", "--timeout", "10", timeout=30).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"RabbitMQ node {self.name} not up within {timeout}s:\n{self.tail()}")

    def stop(self, timeout: float = 60) -> None:
        """Stop the node cleanly (``rabbitmqctl stop``); kill it if that does not work."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.ctl("stop", timeout=timeout)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        """Kill the node and the Erlang processes of its session (teardown)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            self.process = None

    def accepts_connections(self) -> bool:
        """True when the AMQP port takes a TCP connection."""
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True
        return False

    def tail(self, lines: int = 30) -> str:
        """The end of the server's console output, for failure messages."""
        path = self.base / "server.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
