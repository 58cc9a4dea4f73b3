"""End to end: AOS as an MCP server. The official Python `mcp` SDK client (PyPI) connects
to a running aos-server's `/mcp`, which fronts an MCP server written with the same SDK:
list the governed catalog, call a LOW tool, get a policy deny, get a pending approval and
approve it through the REST API. Both protocol eras: the initialize handshake
(mode="legacy") and 2026-07-28 discovery (mode="auto" probes `server/discover`).

Needs AOS_SERVER_BIN (the built binary; `make e2e` sets it)."""

import asyncio
import tempfile

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from test_governance import keys, start_upstream, stop
from test_mcp_registry import Aos, call, free_port

BASE = "/api/v1/integrations/mcp-servers"
DENY_MORDOR = 'package aos.tenant\nimport rego.v1\ndeny contains "no weather for Mordor" if input.arguments.city == "Mordor"\n'


@pytest.fixture()
def aos():
    with tempfile.TemporaryDirectory() as data_dir:
        server = Aos(data_dir).start()
        yield server
        server.stop()


def client(aos: Aos, key: str, mode: str) -> Client:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    return Client(streamable_http_client(f"{aos.base}/mcp", http_client=http), mode=mode, cache=None)


def text(result) -> str:
    return result.content[0].text if result.content else ""


async def session(aos: Aos, key: str, approver: str, mode: str, server_id: str):
    async with client(aos, key, mode) as mcp:
        # legacy: the initialize handshake; auto: server/discover finds 2026-07-28.
        expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
        assert mcp.protocol_version == expected, mcp.protocol_version
        tools = await mcp.list_tools()
        names = sorted(t.name for t in tools.tools)
        assert "python-gov.get_weather" in names, names
        weather = next(t for t in tools.tools if t.name == "python-gov.get_weather")
        assert weather.description == "Get the current weather for a city."
        assert weather.annotations.read_only_hint is True

        # A LOW tool runs through the governed pipeline.
        result = await mcp.call_tool("python-gov.get_weather", {"city": "Oslo"})
        assert not result.is_error, result
        assert text(result) == "sunny in Oslo"

        # The tenant's policy denies this one: a tool error with the reason.
        denied = await mcp.call_tool("python-gov.get_weather", {"city": "Mordor"})
        assert denied.is_error, denied
        assert "no weather for Mordor" in text(denied), denied

        # The CRITICAL tool waits for an approval; its id is in the result.
        pending = await mcp.call_tool("python-gov.drop_table", {"table": "users"})
        assert pending.is_error, pending
        status, queue = call(aos.base, key, "GET", "/api/v1/approvals?status=PENDING")
        assert status == 200, queue
        approval = queue["data"][-1]["id"]
        assert approval in text(pending), text(pending)

    # Approved through the REST API by another key: the stored call runs once.
    status, decision = call(aos.base, approver, "POST", f"/api/v1/approvals/{approval}/approve", {"reason": "e2e"})
    assert status == 200, decision
    assert decision["data"]["approval"]["status"] == "APPROVED"
    assert decision["data"]["invocation"]["status"] == "SUCCESS", decision
    assert decision["data"]["invocation"]["output"]["content"][0]["text"] == "dropped users"

    status, invocations = call(aos.base, key, "GET", f"{BASE}/{server_id}/invocations")
    assert any(i["actor_type"] == "agent" and i["status"] == "BLOCKED" for i in invocations["data"]), invocations


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_python_mcp_client_through_the_gateway(aos, mode):
    admin, approver = keys(aos)
    port = free_port()
    upstream = start_upstream(port)
    try:
        status, body = call(aos.base, admin, "POST", BASE, {"name": "python-gov", "url": f"http://127.0.0.1:{port}/mcp"})
        assert status == 201, body
        server_id = body["data"]["server"]["id"]
        status, tools = call(aos.base, admin, "GET", f"{BASE}/{server_id}/tools")
        drop = next(t for t in tools["data"] if t["name"] == "drop_table")
        status, body = call(aos.base, admin, "POST", f"{BASE}/{server_id}/tools/{drop['id']}/enable")
        assert status == 200, body
        status, body = call(aos.base, admin, "PUT", "/api/v1/policy", {"source": DENY_MORDOR})
        assert status == 200, body

        asyncio.run(session(aos, admin, approver, mode, server_id))

        # Without a key: 401 with the protected resource metadata, as MCP clients expect.
        status, body = call(aos.base, "", "POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert status == 401, body
    finally:
        stop(upstream)
