"""The server's /mcp endpoint driven by the official MCP Python SDK (`mcp` from PyPI).

Usage: client.py URL [API_KEY]  — prints one `ok <check>` line per check, exits non-zero on the
first failure. With API_KEY, it also checks that a request without it is refused.
"""

import asyncio
import sys

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


def check(name, ok, detail=""):
    if not ok:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok   {name}")


async def session_checks(url, headers):
    async with streamablehttp_client(url, headers=headers) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check("initialize names the server", init.serverInfo.name == "assistants", init)
            listed = await session.list_tools()
            names = {t.name: t for t in listed.tools}
            check("the calculator's tools are listed", {"calculate", "convert_units"} <= set(names), sorted(names))
            check(
                "a tool carries its input schema",
                names["calculate"].inputSchema.get("required") == ["expression"],
                names["calculate"].inputSchema,
            )
            check("retrieval tools are not offered", "file_search" not in names, sorted(names))
            result = await session.call_tool("calculate", {"expression": "(2 + 3) * sqrt(16)"})
            check(
                "a call runs in the sandbox",
                not result.isError and result.content[0].text == "20",
                result,
            )
            result = await session.call_tool("calculate", {"expr": "1"})
            check(
                "a tool's error is a result with isError",
                result.isError and "invalid arguments" in result.content[0].text,
                result,
            )
            try:
                await session.call_tool("no_such_tool", {})
                check("an unknown tool is a protocol error", False)
            except Exception as e:  # McpError
                check("an unknown tool is a protocol error", "Unknown tool" in str(e), e)


async def main():
    url = sys.argv[1]
    key = sys.argv[2] if len(sys.argv) > 2 else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    await session_checks(url, headers)
    if key:
        async with httpx.AsyncClient() as http:
            r = await http.post(
                url,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"accept": "application/json, text/event-stream"},
            )
            body = r.json()
            check(
                "a request without the key is refused in the OpenAI error envelope",
                r.status_code == 401 and body["error"]["type"] == "invalid_request_error",
                (r.status_code, body),
            )


asyncio.run(main())
