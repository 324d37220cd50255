"""Fault test of the distributed topology (stdlib only; see topology.py).

300 runs — plain (polled), streamed, tool calls answered by the client, file_search — spread
over both API nodes, while (a) a worker is SIGKILLed (now and then SIGTERMed: a graceful drain)
at random moments and restarted, (b) an API
node is SIGKILLed while clients stream from it, (c) RabbitMQ connections are closed, (d) Redis
is restarted. Then: every run is terminal and matches what its client saw, no message or run
step is duplicated or lost, the queue holds no message (ready or unacked), and every stream on
the surviving API node ended with its run's terminal event and `done`. Prints the tallies;
exits non-zero on any violation.

    source tests/s3/moto.sh assistants-faults
    TOPOLOGY_BUCKET=assistants-faults python3 tests/topology/faults.py
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from topology import Topology, default_binary

RUNS = int(os.environ.get("FAULT_RUNS", "300"))
CLIENTS = int(os.environ.get("FAULT_CLIENTS", "16"))
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


class Unavailable(Exception):
    """The node did not answer (killed or restarting)."""


def request(base: str, method: str, path: str, body=None, timeout: float = 30):
    u = urllib.parse.urlparse(base + path)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=data,
                     headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
        r = conn.getresponse()
        text = r.read().decode()
        return r.status, json.loads(text) if text else None
    except (OSError, http.client.HTTPException) as e:
        raise Unavailable(str(e)) from e
    finally:
        conn.close()


def stream(base: str, path: str, body: dict, timeout: float = 60):
    """POSTs with stream: true; returns (events, complete) — complete when `done` arrived."""
    u = urllib.parse.urlparse(base + path)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    events = []
    try:
        conn.request("POST", u.path, body=json.dumps({**body, "stream": True}).encode(),
                     headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
        r = conn.getresponse()
        if r.status != 200:
            return [("http", r.status)], False
        event = None
        while True:
            line = r.readline()
            if not line:
                return events, False
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
                events.append((event, json.loads(data) if data != "[DONE]" else data))
                if event == "done":
                    return events, True
    except (OSError, http.client.HTTPException):
        return events, False
    finally:
        conn.close()


class Load:
    def __init__(self, topo: Topology):
        self.topo = topo
        self.lock = threading.Lock()
        self.records = []
        self.retries = Counter()
        self.open_streams = Counter()
        self.interrupted = Counter()

    def any_node(self, prefer: str):
        return [prefer, "api-1" if prefer == "api-2" else "api-2"]

    def call(self, prefer: str, method: str, path: str, body=None):
        """A request that survives a node being down: the other node, then retries."""
        deadline = time.time() + 60
        while True:
            for node in self.any_node(prefer):
                try:
                    return request(self.topo.base(node), method, path, body)
                except Unavailable:
                    with self.lock:
                        self.retries[node] += 1
            if time.time() > deadline:
                raise RuntimeError(f"{method} {path}: no API node answered for 60 s")
            time.sleep(0.2)

    def created(self, prefer: str, thread: str, body: dict) -> dict:
        """Creates a run; if the answer was lost, finds the run the request may have made."""
        for node in self.any_node(prefer):
            try:
                status, run = request(self.topo.base(node), "POST", f"/threads/{thread}/runs", body)
                if status == 200:
                    return run
            except Unavailable:
                pass
            status, runs = self.call(prefer, "GET", f"/threads/{thread}/runs")
            if runs["data"]:
                return runs["data"][0]
        raise RuntimeError("could not create a run")

    def wait(self, prefer: str, thread: str, run_id: str) -> dict:
        deadline = time.time() + 180
        while True:
            _, run = self.call(prefer, "GET", f"/threads/{thread}/runs/{run_id}")
            if run["status"] in TERMINAL or run["status"] == "requires_action":
                return run
            if time.time() > deadline:
                raise RuntimeError(f"run {run_id} stuck in {run['status']}")
            time.sleep(0.1)

    def response(self, i: int, node: str):
        """A background response (the Responses surface on the same engine), polled to its end."""
        _, resp = self.call(node, "POST", "/responses",
                            {"model": "gpt-fault", "input": f"respond {i}", "background": True})
        deadline = time.time() + 180
        while resp["status"] in ("queued", "in_progress"):
            if time.time() > deadline:
                raise RuntimeError(f"response {resp['id']} stuck in {resp['status']}")
            time.sleep(0.1)
            _, resp = self.call(node, "GET", f"/responses/{resp['id']}")
        with self.lock:
            self.records.append({"i": i, "kind": "response", "node": node, "response": resp["id"],
                                 "seen": resp["status"], "stream_node": None, "stream_complete": None})

    def one(self, i: int, kind: str, node: str, assistants: dict):
        if kind == "response":
            return self.response(i, node)
        text = {"plain": f"hello {i}", "streamed": f"stream {i}",
                "tool": f"what is the weather {i}", "file_search": f"find the fox {i}"}[kind]
        _, thread = self.call(node, "POST", "/threads",
                              {"messages": [{"role": "user", "content": text}]})
        thread = thread["id"]
        body = {"assistant_id": assistants[kind]}
        seen = None  # the terminal status the client saw
        stream_node, stream_complete = None, None
        if kind == "streamed":
            with self.lock:
                self.open_streams[node] += 1
            try:
                events, complete = stream(self.topo.base(node), f"/threads/{thread}/runs", body)
            finally:
                with self.lock:
                    self.open_streams[node] -= 1
            # Complete: `done` right after the run's terminal event (not after an error).
            named = [e for e, _ in events]
            complete = complete and len(named) >= 2 and named[-2] in {
                f"thread.run.{t}" for t in TERMINAL}
            if not complete:
                with self.lock:
                    self.interrupted[node] += 1
            stream_node, stream_complete = node, complete
            finals = [d for e, d in events if e and e.startswith("thread.run.") and
                      isinstance(d, dict) and d.get("object") == "thread.run"]
            run_id = finals[0]["id"] if finals else None
            if run_id is None:
                # The node died before the run was created or announced: find or create it.
                run_id = self.created(node, thread, body)["id"]
            if complete and finals and finals[-1]["status"] in TERMINAL:
                seen = finals[-1]["status"]
            else:
                seen = self.wait(node, thread, run_id)["status"]
        else:
            run = self.created(node, thread, body)
            run_id = run["id"]
            run = self.wait(node, thread, run_id)
            if run["status"] == "requires_action":
                calls = run["required_action"]["submit_tool_outputs"]["tool_calls"]
                outputs = [{"tool_call_id": c["id"], "output": "sunny"} for c in calls]
                status, _ = self.call(node, "POST",
                                      f"/threads/{thread}/runs/{run_id}/submit_tool_outputs",
                                      {"tool_outputs": outputs})
                if status != 200:
                    # The first attempt landed before its answer was lost: the run moved on.
                    pass
                run = self.wait(node, thread, run_id)
            seen = run["status"]
        with self.lock:
            self.records.append({"i": i, "kind": kind, "node": node, "thread": thread,
                                 "run": run_id, "seen": seen, "stream_node": stream_node,
                                 "stream_complete": stream_complete})


def faults(topo: Topology, load: "Load", stop: threading.Event, progress, log: list, done: set):
    """Injects the four faults while the load runs; `done` collects those injected."""
    next_worker_kill = time.time() + 2
    while not stop.is_set():
        p = progress()
        if time.time() >= next_worker_kill:
            w = random.choice(["worker-1", "worker-2"])
            # Mostly SIGKILL; every third stop is a SIGTERM (drain, grace period, hand back).
            graceful = "worker" in done and random.random() < 1 / 3
            topo.kill(w, signal.SIGTERM if graceful else signal.SIGKILL)
            if graceful:
                done.add("worker-graceful")
            log.append(f"{'SIGTERM' if graceful else 'SIGKILL'} {w} at {p} runs")
            time.sleep(random.uniform(0.2, 1.5))
            topo.restart(w)
            done.add("worker")
            next_worker_kill = time.time() + random.uniform(2, 5)
        # The API node dies while at least one client streams from it.
        if p >= RUNS * 0.3 and "api" not in done and load.open_streams["api-2"] > 0:
            done.add("api")
            topo.kill("api-2")
            log.append(f"SIGKILL api-2 at {p} runs")
            time.sleep(2)
            topo.restart("api-2")
        if p >= RUNS * 0.5 and "rabbit" not in done:
            done.add("rabbit")
            subprocess.run(["rabbitmqctl", "-q", "close_all_connections", "fault test"], check=True,
                           stdout=subprocess.DEVNULL)
            log.append(f"RabbitMQ connections closed at {p} runs")
        if p >= RUNS * 0.7 and "redis" not in done:
            done.add("redis")
            subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
                            "--port", "6379", "--save", "", "--appendonly", "no",
                            "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"], check=True)
            log.append(f"Redis restarted at {p} runs")
        time.sleep(0.1)


def main() -> int:
    topo = Topology(default_binary(), os.environ.get("TOPOLOGY_BUCKET", "assistants-faults"),
                    chunk_delay_ms=int(os.environ.get("FAULT_CHUNK_DELAY_MS", "100")))
    failures = []
    try:
        topo.up()
        load = Load(topo)
        base = topo.base("api-1")
        # A vector store with one document for the file_search runs.
        boundary = "----fault"
        doc = "The quick brown fox jumps over the lazy dog.\n" * 20
        payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
                   f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fox.txt\"\r\n"
                   f"Content-Type: text/plain\r\n\r\n{doc}\r\n--{boundary}--\r\n").encode()
        u = urllib.parse.urlparse(base + "/files")
        conn = http.client.HTTPConnection(u.hostname, u.port)
        conn.request("POST", u.path, body=payload, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": "Bearer x"})
        file_id = json.loads(conn.getresponse().read())["id"]
        _, vs = request(base, "POST", "/vector_stores", {"name": "faults", "file_ids": [file_id]})
        while request(base, "GET", f"/vector_stores/{vs['id']}")[1]["file_counts"]["completed"] < 1:
            time.sleep(0.2)
        assistants = {}
        for kind, extra in [("plain", {}), ("streamed", {}), ("tool", {"tools": [WEATHER_TOOL]}),
                            ("file_search", {"tools": [{"type": "file_search"}],
                                             "tool_resources": {"file_search": {"vector_store_ids": [vs["id"]]}}})]:
            _, a = request(base, "POST", "/assistants", {"model": "gpt-fault", **extra})
            assistants[kind] = a["id"]

        kinds = ["plain", "streamed", "tool", "file_search", "response"]
        plan = [(i, kinds[i % len(kinds)], "api-1" if (i // len(kinds)) % 2 == 0 else "api-2")
                for i in range(RUNS)]
        random.Random(7).shuffle(plan)
        stop = threading.Event()
        fault_log: list[str] = []
        injected: set[str] = set()
        injector_errors: list[str] = []

        def inject():
            try:
                faults(topo, load, stop, lambda: len(load.records), fault_log, injected)
            except Exception as e:  # noqa: BLE001 - reported below
                injector_errors.append(repr(e))

        injector = threading.Thread(target=inject)
        started = time.time()
        injector.start()
        errors = []
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(load.one, i, k, n, assistants) for i, k, n in plan]
            for f in futures:
                try:
                    f.result()
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))
        stop.set()
        injector.join()
        elapsed = time.time() - started
        failures += [f"client error: {e}" for e in errors]
        failures += [f"fault injector failed: {e}" for e in injector_errors]
        if not {"worker", "api", "rabbit", "redis"} <= injected:
            failures.append(f"not every fault was injected: {sorted(injected)}")
        if load.interrupted["api-2"] == 0:
            failures.append("killing api-2 interrupted no stream")

        # Verification, through api-1 (the node never killed).
        expected_steps = {"plain": ["message_creation"], "streamed": ["message_creation"],
                          "tool": ["tool_calls", "message_creation"],
                          "file_search": ["tool_calls", "message_creation"]}
        statuses = Counter()
        for r in load.records:
            if r["kind"] == "response":
                # Exactly one answer, complete, whatever the workers went through.
                _, resp = request(base, "GET", f"/responses/{r['response']}")
                statuses[resp["status"]] += 1
                if resp["status"] != r["seen"] or resp["status"] != "completed":
                    failures.append(f"{r['response']}: client saw {r['seen']}, stored {resp['status']}: "
                                    f"{resp.get('error')}")
                texts = [p["text"] for o in resp["output"] for p in o.get("content", [])]
                if [o["type"] for o in resp["output"]] != ["message"] or \
                        [t.strip() for t in texts] != [f"echo: respond {r['i']}"]:
                    failures.append(f"{r['response']}: output {resp['output']}")
                continue
            _, run = request(base, "GET", f"/threads/{r['thread']}/runs/{r['run']}")
            statuses[run["status"]] += 1
            if run["status"] != r["seen"]:
                failures.append(f"{r['run']}: client saw {r['seen']}, stored {run['status']}")
            if run["status"] != "completed":
                failures.append(f"{r['run']} ({r['kind']}) ended {run['status']}: {run.get('last_error')}")
            _, msgs = request(base, "GET", f"/threads/{r['thread']}/messages?run_id={r['run']}")
            if len(msgs["data"]) != 1:
                failures.append(f"{r['run']}: {len(msgs['data'])} messages")
            _, steps = request(base, "GET", f"/threads/{r['thread']}/runs/{r['run']}/steps?order=asc")
            kinds_seen = [s["type"] for s in steps["data"]]
            if kinds_seen != expected_steps[r["kind"]]:
                failures.append(f"{r['run']} ({r['kind']}): steps {kinds_seen}")
            if r["stream_node"] == "api-1" and not r["stream_complete"]:
                failures.append(f"{r['run']}: stream on the surviving node did not complete")
        if len(load.records) != RUNS:
            failures.append(f"{len(load.records)} of {RUNS} runs recorded")
        # The queue drains: nothing ready, nothing unacked.
        queue = None
        for _ in range(50):
            out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name", "messages_ready",
                                  "messages_unacknowledged"], capture_output=True, text=True).stdout
            queue = next((line.split() for line in out.splitlines() if line.startswith(topo.queue)), None)
            if queue and queue[1:] == ["0", "0"]:
                break
            time.sleep(0.2)
        if not queue or queue[1:] != ["0", "0"]:
            failures.append(f"queue not drained: {queue}")

        streams = [r for r in load.records if r["stream_node"]]
        print(f"faults: {'; '.join(fault_log)}")
        print(f"runs: {len(load.records)} in {elapsed:.1f} s, by kind {dict(Counter(r['kind'] for r in load.records))}, "
              f"by node {dict(Counter(r['node'] for r in load.records))}")
        print(f"final statuses: {dict(statuses)}")
        print(f"streams: {len(streams)}; complete on api-1 {sum(1 for r in streams if r['stream_node'] == 'api-1' and r['stream_complete'])}"
              f"/{sum(1 for r in streams if r['stream_node'] == 'api-1')}, "
              f"complete on api-2 {sum(1 for r in streams if r['stream_node'] == 'api-2' and r['stream_complete'])}"
              f"/{sum(1 for r in streams if r['stream_node'] == 'api-2')} (api-2 was killed once; "
              f"interrupted streams were followed by polling)")
        print(f"client requests retried on another node: {dict(load.retries)}")
        print(f"queue {topo.queue}: ready/unacked {queue[1:] if queue else '?'}")
        for f in failures[:50]:
            print("FAIL", f)
        print("OK" if not failures else f"{len(failures)} violations")
        return 1 if failures else 0
    finally:
        if failures:
            os.environ["KEEP_TOPOLOGY_LOGS"] = "1"
            print(f"logs kept in {topo.dir}")
        topo.down()


if __name__ == "__main__":
    sys.exit(main())
