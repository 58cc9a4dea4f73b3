"""End to end: an agent. The official Python `mcp` SDK client connects to a running
aos-server as an agent (its own API key on `/mcp`, and an admin on `/mcp/agents/{id}`):
it lists exactly the agent's capabilities, calls one, and a tool outside them is refused
as an unknown tool with nothing sent upstream; the signed manifest verifies.

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


@pytest.fixture()
def aos():
    with tempfile.TemporaryDirectory() as data_dir:
        server = Aos(data_dir).start()
        yield server
        server.stop()


def client(aos: Aos, key: str, path: str) -> Client:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    return Client(streamable_http_client(f"{aos.base}{path}", http_client=http), mode="legacy", cache=None)


async def as_agent(aos: Aos, key: str, path: str):
    async with client(aos, key, path) as mcp:
        tools = await mcp.list_tools()
        assert sorted(t.name for t in tools.tools) == ["python-gov.get_weather"], tools
        result = await mcp.call_tool("python-gov.get_weather", {"city": "Oslo"})
        assert not result.is_error, result
        assert result.content[0].text == "sunny in Oslo"
        # Outside the agent's capabilities: exactly like a tool that does not exist.
        with pytest.raises(Exception) as refused:
            await mcp.call_tool("python-gov.drop_table", {"table": "users"})
        assert "python-gov.drop_table" in str(refused.value) or "unknown" in str(refused.value).lower(), refused.value


def test_python_mcp_client_as_an_agent(aos):
    admin, _ = keys(aos)
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

        status, agent = call(aos.base, admin, "POST", "/api/v1/agents",
                             {"name": "weather-bot", "capabilities": [{"tool": "python-gov.get_*", "max_risk": "LOW"}]})
        assert status == 201, agent
        agent_id = agent["data"]["id"]
        status, created = call(aos.base, admin, "POST", f"/api/v1/agents/{agent_id}/api-keys", {"name": "bot"})
        assert status == 201, created
        bot = created["data"]["key"]

        asyncio.run(as_agent(aos, bot, "/mcp"))
        asyncio.run(as_agent(aos, admin, f"/mcp/agents/{agent_id}"))

        # Every call of the agent's key is the agent's; the refused one reached nothing.
        status, invocations = call(aos.base, admin, "GET", f"{BASE}/{server_id}/invocations")
        mine = [i for i in invocations["data"] if i.get("actor_id") == f"agent:{agent_id}"]
        assert [i["status"] for i in mine] == ["SUCCESS"], invocations

        # Its manifest names the one tool and verifies against the published key.
        status, manifest = call(aos.base, admin, "POST", f"/api/v1/agents/{agent_id}/manifests")
        assert status == 201, manifest
        assert [c["name"] for c in manifest["data"]["payload"]["capabilities"]] == ["python-gov.get_weather"]
        status, verdict = call(aos.base, bot, "POST", "/api/v1/agents/manifests/verify",
                               {"manifest": manifest["data"]["manifest"]})
        assert status == 200 and verdict["data"]["valid"] is True, verdict
    finally:
        stop(upstream)
