"""An MCP server written with the official Python SDK (PyPI `mcp`), for AOS's end-to-end
tests. Usage: python notes_server.py PORT [sse]."""

import sys

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("python-notes", version="1.0.0")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"sunny in {city}"


@server.tool(annotations=ToolAnnotations(destructiveHint=True))
def drop_table(table: str) -> str:
    """Drop a database table."""
    return f"dropped {table}"


@server.tool()
def update_profile(name: str, bio: str = "") -> str:
    """Update the user's profile."""
    return f"updated {name}"


if __name__ == "__main__":
    port = int(sys.argv[1])
    transport = "sse" if len(sys.argv) > 2 and sys.argv[2] == "sse" else "streamable-http"
    server.run(transport, host="127.0.0.1", port=port)
