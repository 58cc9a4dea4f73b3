"""An MCP server written with the official Python SDK's low-level API that serves tool
definitions read from a JSON file, exactly as written (descriptions, schemas, annotations):
for measuring AOS's poisoning detector as a customer would.
Usage: python scripted_server.py PORT FILE.json"""

import json
import sys

import mcp_types as types
import uvicorn
from mcp.server.lowlevel.server import Server

KEYS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
TOOLS = [types.Tool(**{k: t[k] for k in KEYS if k in t}) for t in json.load(open(sys.argv[2]))]


async def list_tools(_ctx, _params):
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(_ctx, params):
    return types.CallToolResult(content=[types.TextContent(type="text", text=params.name)])


server = Server("scripted", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)

if __name__ == "__main__":
    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
