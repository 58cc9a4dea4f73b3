"""End to end: governed tool invocation through a real aos-server binary in front of an
MCP server written with the official Python `mcp` SDK: a LOW tool runs and is recorded
with hashes; a CRITICAL tool waits for approval and runs once; a disabled tool is
blocked; the upstream dies and the call fails with an incident; the upstream changes a
tool's description and the tool is quarantined; the audit chain verifies.

Needs AOS_SERVER_BIN (the built binary; `make e2e` sets it)."""

import hashlib
import json
import subprocess
import sys
import tempfile

import pytest

from test_mcp_registry import HERE, Aos, call, free_port, tenant_with_keys, wait_for_port

BASE = "/api/v1/integrations/mcp-servers"


def start_upstream(port: int, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(HERE / "gov_server.py"), str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def aos():
    with tempfile.TemporaryDirectory() as data_dir:
        server = Aos(data_dir).start()
        yield server
        server.stop()


def keys(aos: Aos):
    (_, admin), (_, approver) = tenant_with_keys(aos, "gov-e2e", ["mcp:admin", "mcp:read", "mcp:invoke"],
                                                 ["approvals:decide"])
    return admin, approver


def canonical_sha256(value) -> str:
    # RFC 8785 for plain ASCII strings and objects: sorted keys, no whitespace.
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_governed_invocation_end_to_end(aos):
    admin, approver = keys(aos)
    port = free_port()
    upstream = start_upstream(port)
    try:
        status, body = call(aos.base, admin, "POST", BASE, {"name": "python-gov", "url": f"http://127.0.0.1:{port}/mcp"})
        assert status == 201 and "discovery_error" not in body["data"], body
        server_id = body["data"]["server"]["id"]
        status, tools = call(aos.base, admin, "GET", f"{BASE}/{server_id}/tools")
        tool = {t["name"]: t for t in tools["data"]}
        assert tool["get_weather"]["risk_level"] == "LOW" and tool["get_weather"]["enabled"] is True
        assert tool["drop_table"]["risk_level"] == "CRITICAL" and tool["drop_table"]["enabled"] is False

        def invoke(name, payload, key=admin):
            return call(aos.base, key, "POST", f"{BASE}/{server_id}/tools/{tool[name]['id']}/invoke",
                        {"input": payload, "run_id": "e2e-run"})

        # A LOW tool runs and is recorded with hashes.
        status, body = invoke("get_weather", {"city": "Oslo"})
        assert status == 200 and body["data"]["status"] == "SUCCESS", body
        assert body["data"]["output"]["content"][0]["text"] == "sunny in Oslo"
        assert body["data"]["input_hash"] == canonical_sha256({"city": "Oslo"})
        assert len(body["data"]["output_hash"]) == 64
        status, bad = invoke("get_weather", {"city": 7})
        assert status == 400 and bad["error"]["code"] == "invalid_tool_input", bad

        # A disabled CRITICAL tool is blocked and recorded.
        status, body = invoke("drop_table", {"table": "users"})
        assert body["data"]["status"] == "BLOCKED" and body["data"]["reasons"] == ["tool is disabled"], body

        # Enabled, it waits for an approval; approving runs it exactly once.
        status, _ = call(aos.base, admin, "POST", f"{BASE}/{server_id}/tools/{tool['drop_table']['id']}/enable")
        assert status == 200
        status, body = invoke("drop_table", {"table": "users"})
        assert body["data"]["status"] == "PENDING_APPROVAL", body
        approval = body["data"]["approval_id"]
        status, decided = call(aos.base, approver, "POST", f"/api/v1/approvals/{approval}/approve", {"reason": "ok"})
        assert status == 200, decided
        assert decided["data"]["invocation"]["status"] == "SUCCESS", decided
        assert decided["data"]["invocation"]["output"]["content"][0]["text"] == "dropped users"
        status, again = call(aos.base, approver, "POST", f"/api/v1/approvals/{approval}/approve")
        assert status == 409, again

        # The upstream dies: FAILURE with an incident.
        stop(upstream)
        status, body = invoke("get_weather", {"city": "Oslo"})
        assert body["data"]["status"] == "FAILURE" and body["data"]["incident_id"], body
        status, incident = call(aos.base, admin, "GET", f"/api/v1/incidents/{body['data']['incident_id']}")
        assert status == 200 and incident["data"]["kind"] == "INVOCATION_FAILED", incident

        # It comes back with `get_weather` redefined: quarantined until an admin re-approves.
        upstream = start_upstream(port, "drift")
        status, discovery = call(aos.base, admin, "POST", f"{BASE}/{server_id}/discover")
        assert status == 200 and discovery["data"]["tools_quarantined"] == 1, discovery
        status, body = invoke("get_weather", {"city": "Oslo"})
        assert body["data"]["status"] == "BLOCKED", body
        status, incidents = call(aos.base, admin, "GET", "/api/v1/incidents?kind=TOOL_DRIFT")
        assert len(incidents["data"]) == 1, incidents

        # The manifest names a published key; the audit chain verifies.
        status, manifest = call(aos.base, admin, "GET", f"{BASE}/{server_id}/manifest")
        assert status == 200, manifest
        status, jwks = call(aos.base, admin, "GET", "/.well-known/jwks.json")
        assert manifest["data"]["kid"] in [k["kid"] for k in jwks["keys"]]
        status, verify = call(aos.base, admin, "GET", "/api/v1/audit/verify")
        assert status == 200 and verify["data"]["valid"] is True and verify["data"]["length"] > 10, verify
    finally:
        stop(upstream)
