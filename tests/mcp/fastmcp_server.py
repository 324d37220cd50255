"""A remote MCP server built with the official MCP Python SDK's FastMCP (`mcp` from PyPI), for
the server's own MCP client (the `mcp` tool of responses and assistants) to reach: `add`, and
`whoami`, which says whether the request carried the expected credentials (without echoing
them). Streamable HTTP at /mcp, with the SDK's defaults (sessions, event-stream answers).

Usage: fastmcp_server.py PORT
"""

import sys

from mcp.server.fastmcp import Context, FastMCP

SECRET = "Bearer sk-fastmcp-0123456789"

server = FastMCP("fastmcp-calc", host="127.0.0.1", port=int(sys.argv[1]))


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
def whoami(ctx: Context) -> str:
    """Whether this request carried the client's credentials."""
    request = ctx.request_context.request
    sent = request.headers.get("authorization") if request is not None else None
    return "authorized" if sent == SECRET else "anonymous"


server.run(transport="streamable-http")
