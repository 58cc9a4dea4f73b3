"""End to end: a real aos-server binary and an MCP server written with the official
Python `mcp` SDK, driven over HTTP the way a customer would: register, discover, list
tools with risk levels, health-check, disable a tool, delete, and restart AOS.

Needs AOS_SERVER_BIN (the built binary; `make e2e` sets it)."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
OPERATOR = "aos_op_e2e_operator_token_0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}")


def call(base: str, token: str, method: str, path: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def tenant_with_keys(aos, name: str, *scopes: list):
    """A new tenant and one API key per scope list: [(key id, key), ...]."""
    status, tenant = call(aos.base, OPERATOR, "POST", "/api/v1/admin/tenants", {"name": name})
    assert status == 201, tenant
    tenant_id = tenant["data"]["id"]
    keys = []
    for scope_list in scopes:
        status, body = call(aos.base, OPERATOR, "POST", f"/api/v1/admin/tenants/{tenant_id}/api-keys",
                            {"name": "e2e", "scopes": scope_list})
        assert status == 201, body
        keys.append((body["data"]["api_key"]["id"], body["data"]["key"]))
    return keys


class Aos:
    """The aos-server binary on SQLite in a directory of its own."""

    def __init__(self, data_dir: str, extra_env=None):
        self.data_dir = data_dir
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_") and k != "DATABASE_URL"}
        env.update(
            AOS_SERVER__BIND=f"127.0.0.1:{self.port}",
            AOS_AUTH__OPERATOR_TOKEN=OPERATOR,
            AOS_MCP__OUTBOUND__ALLOW_HOSTS='["127.0.0.1"]',
            AOS_MCP__HEALTH_INTERVAL_SECS="0",
            AOS_LOG__FORMAT="json",
        )
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [os.environ["AOS_SERVER_BIN"]], cwd=self.data_dir, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


@pytest.fixture()
def python_mcp_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "notes_server.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def aos():
    with tempfile.TemporaryDirectory() as data_dir:
        server = Aos(data_dir).start()
        yield server
        server.stop()


def tenant_key(aos: Aos) -> str:
    status, tenant = call(aos.base, OPERATOR, "POST", "/api/v1/admin/tenants", {"name": "e2e"})
    assert status == 201, tenant
    tenant_id = tenant["data"]["id"]
    status, key = call(aos.base, OPERATOR, "POST", f"/api/v1/admin/tenants/{tenant_id}/api-keys",
                       {"name": "e2e", "scopes": ["mcp:admin", "mcp:read"]})
    assert status == 201, key
    return key["data"]["key"]


def test_register_discover_manage_delete_and_restart(aos, python_mcp_server):
    key = tenant_key(aos)
    base = "/api/v1/integrations/mcp-servers"

    status, body = call(aos.base, key, "POST", base, {"name": "python-notes", "url": python_mcp_server})
    assert status == 201, body
    assert "discovery_error" not in body["data"], body
    discovery = body["data"]["discovery"]
    assert discovery["tools_found"] == 3 and discovery["tools_added"] == 3
    server = body["data"]["server"]
    assert server["status"] == "ACTIVE" and server["tool_count"] == 3
    assert server["protocol_version"]
    server_id = server["id"]

    status, tools = call(aos.base, key, "GET", f"{base}/{server_id}/tools")
    assert status == 200
    risk = {t["name"]: t["risk_level"] for t in tools["data"]}
    assert risk == {"get_weather": "LOW", "drop_table": "CRITICAL", "update_profile": "MEDIUM"}, risk

    status, health = call(aos.base, key, "GET", f"{base}/{server_id}/health")
    assert status == 200 and health["data"]["healthy"] is True, health

    drop = next(t for t in tools["data"] if t["name"] == "drop_table")
    status, disabled = call(aos.base, key, "POST", f"{base}/{server_id}/tools/{drop['id']}/disable")
    assert status == 200 and disabled["data"]["enabled"] is False

    status, again = call(aos.base, key, "POST", f"{base}/{server_id}/discover")
    assert status == 200 and again["data"]["tools_added"] == 0, again

    # Restart AOS on the same data directory: everything is still there.
    aos.stop()
    aos.start()
    status, listed = call(aos.base, key, "GET", base)
    assert status == 200 and [s["id"] for s in listed["data"]] == [server_id]
    status, tools_after = call(aos.base, key, "GET", f"{base}/{server_id}/tools")
    assert {t["name"]: t["enabled"] for t in tools_after["data"]}["drop_table"] is False

    status, deleted = call(aos.base, key, "DELETE", f"{base}/{server_id}")
    assert status == 200 and deleted["data"]["status"] == "DELETED"
    status, listed = call(aos.base, key, "GET", base)
    assert status == 200 and listed["data"] == []
    status, audit = call(aos.base, key, "GET", f"{base}?include_disabled=true")
    assert [s["id"] for s in audit["data"]] == [server_id]


def test_a_python_sse_server_over_the_legacy_transport(aos):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "notes_server.py"), str(port), "sse"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        key = tenant_key(aos)
        status, body = call(aos.base, key, "POST", "/api/v1/integrations/mcp-servers",
                            {"name": "python-sse", "url": f"http://127.0.0.1:{port}/sse", "transport": "SSE"})
        assert status == 201, body
        assert "discovery_error" not in body["data"], body
        assert body["data"]["discovery"]["tools_found"] == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)
