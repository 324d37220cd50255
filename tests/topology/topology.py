"""The distributed topology of docker-compose.dev.yml as local processes (stdlib only).

Two API nodes (`serve --no-worker`) and two workers (`worker --listen`) of the `assistants`
binary, against the machine's PostgreSQL (a fresh database), RabbitMQ (a fresh queue) and Redis,
plus a local S3 server (moto, see tests/s3/moto.sh: its AWS_* variables must be in the
environment) and the deterministic fake LLM of the SDK suites.

    python3 tests/topology/topology.py up      # start, print the endpoints, run until Ctrl-C

`Topology` is also what tests/topology/faults.py drives (kill, restart).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG = os.environ.get("ASSISTANTS_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
AMQP = os.environ.get("ASSISTANTS_TEST_QUEUE_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
REDIS = os.environ.get("ASSISTANTS_TEST_EVENTS_URL", "redis://127.0.0.1:6379")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"{url} did not become ready")
        time.sleep(0.1)


class Topology:
    def __init__(self, binary: str, bucket: str, chunk_delay_ms: int = 0, lease_secs: int = 4):
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="assistants-topology-"))
        suffix = f"{random.getrandbits(32):08x}"
        self.db_name = f"topology_{suffix}"
        self.queue = f"assistants-topology-{suffix}"
        self.database_url = PG.rsplit("/", 1)[0] + "/" + self.db_name
        self.bucket = bucket
        self.lease_secs = lease_secs
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self.llm_port = free_port()
        env = dict(os.environ)
        if chunk_delay_ms:
            env["FAKE_LLM_CHUNK_DELAY_MS"] = str(chunk_delay_ms)
        self.llm = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/sdk/fake_llm.py"), str(self.llm_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.config = self.dir / "assistants.toml"
        self.config.write_text(f'[runs]\nqueue_name = "{self.queue}"\nlease_secs = {lease_secs}\n')
        subprocess.run(
            ["psql", PG, "-q", "-c", f"CREATE DATABASE {self.db_name}"], check=True
        )

    def command(self, name: str) -> list[str]:
        port = self.ports.setdefault(name, free_port())
        common = [
            "--config", str(self.config),
            "--listen", f"127.0.0.1:{port}",
            "--data-dir", str(self.dir / name),
            "--database-url", self.database_url,
            "--object-store-url", f"s3://{self.bucket}",
            "--queue-url", AMQP,
            "--events-url", REDIS,
            "--llm-base-url", f"http://127.0.0.1:{self.llm_port}/v1",
            "--log-format", "json",
            "--shutdown-grace-secs", "5",
        ]
        if name.startswith("api"):
            return [self.binary, "serve", "--no-worker", *common]
        return [self.binary, "worker", *common]

    def start(self, name: str) -> None:
        log = open(self.dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            self.command(name), stdout=log, stderr=subprocess.STDOUT
        )
        wait_http(f"{self.base(name, v1=False)}/readyz")

    def up(self) -> "Topology":
        for name in ["api-1", "api-2", "worker-1", "worker-2"]:
            self.start(name)
        return self

    def base(self, name: str, v1: bool = True) -> str:
        return f"http://127.0.0.1:{self.ports[name]}" + ("/v1" if v1 else "")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs[name]
        p.send_signal(sig)
        p.wait()

    def restart(self, name: str) -> None:
        self.start(name)

    def down(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.llm.kill()
        self.llm.wait()
        subprocess.run(["rabbitmqctl", "-q", "delete_queue", self.queue], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["psql", PG, "-q", "-c", f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)"],
                       check=False)
        if not os.environ.get("KEEP_TOPOLOGY_LOGS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def describe(self) -> dict:
        return {
            "api": [self.base("api-1"), self.base("api-2")],
            "workers": [self.base("worker-1", v1=False), self.base("worker-2", v1=False)],
            "database": self.database_url,
            "queue": self.queue,
            "llm": f"http://127.0.0.1:{self.llm_port}/v1",
            "logs": str(self.dir),
        }


def default_binary() -> str:
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return os.environ.get("ASSISTANTS_BIN", f"{target}/debug/assistants")


if __name__ == "__main__":
    if sys.argv[1:] != ["up"]:
        sys.exit(__doc__)
    topo = Topology(default_binary(), os.environ.get("TOPOLOGY_BUCKET", "assistants-topology"))
    try:
        topo.up()
        print(json.dumps(topo.describe(), indent=2), flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        topo.down()
