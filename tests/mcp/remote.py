"""The server's MCP client against a server built with the official MCP Python SDK (FastMCP,
tests/mcp/fastmcp_server.py): an assistant's `mcp` tool (an extension of the Assistants API)
and a response's, driven over the server's HTTP API; the model is tests/sdk/fake_llm.py, which
calls a tool when told `mcp: NAME {json}`.

Usage: remote.py API_BASE API_KEY MCP_URL — prints one `ok <check>` line per check, exits
non-zero on the first failure.
"""

import json
import sys
import time

import httpx

SECRET = "Bearer sk-fastmcp-0123456789"


def check(name, ok, detail=""):
    if not ok:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok   {name}")


def main():
    base, key, mcp_url = sys.argv[1:4]
    http = httpx.Client(
        base_url=base,
        headers={"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"},
        timeout=60,
    )

    def post(path, body):
        r = http.post(path, json=body)
        check(f"POST {path} answers 200", r.status_code == 200, r.text)
        return r.json()

    server = {"type": "mcp", "server_label": "fastmcp", "server_url": mcp_url}
    asst = post(
        "/assistants",
        {"model": "m", "tools": [{**server, "headers": {"Authorization": SECRET}}]},
    )
    check("the assistant does not show the headers", "sk-fastmcp" not in json.dumps(asst), asst)

    def run(content):
        run = post(
            "/threads/runs",
            {"assistant_id": asst["id"], "thread": {"messages": [{"role": "user", "content": content}]}},
        )
        for _ in range(600):
            run = http.get(f"/threads/{run['thread_id']}/runs/{run['id']}").json()
            if run["status"] not in ("queued", "in_progress"):
                break
            time.sleep(0.1)
        check(f"the run of '{content}' completed", run["status"] == "completed", run)
        steps = http.get(f"/threads/{run['thread_id']}/runs/{run['id']}/steps").json()["data"]
        calls = [c for s in steps if s["type"] == "tool_calls" for c in s["step_details"]["tool_calls"]]
        return run, calls

    _, calls = run('mcp: add {"a": 2, "b": 3}')
    check(
        "an assistant's run calls the server's tool",
        len(calls) == 1 and calls[0]["function"]["name"] == "add" and calls[0]["function"]["output"] == "5",
        calls,
    )
    check("the call names its server", calls[0].get("mcp", {}).get("server_label") == "fastmcp", calls)
    _, calls = run("mcp: whoami {}")
    check(
        "the assistant's headers reached the server",
        calls and calls[0]["function"]["output"] == "authorized",
        calls,
    )

    response = post(
        "/responses",
        {
            "model": "m",
            "input": 'mcp: add {"a": 4, "b": 5}',
            "tools": [{**server, "require_approval": "never", "headers": {"Authorization": SECRET}}],
        },
    )
    kinds = [o["type"] for o in response["output"]]
    check("a response lists the server's tools and calls one", kinds[:2] == ["mcp_list_tools", "mcp_call"], kinds)
    listed = sorted(t["name"] for t in response["output"][0]["tools"])
    check("the listing has the server's tools", listed == ["add", "whoami"], listed)
    check("the response's call answered", response["output"][1]["output"] == "9", response["output"][1])


main()
