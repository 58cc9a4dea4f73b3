"""End to end: AOS's tool-poisoning verdicts as a customer reads them. Real MCP servers
written with the official Python SDK serve our labelled corpus
(tests/fixtures/mcp-tools/poisoned.json) and the 99 real definitions (benign.json); AOS
registers and discovers them, and the verdicts are read from its API: every poisoned
definition flagged, at least HIGH and disabled; no real definition flagged.

Needs AOS_SERVER_BIN (the built binary; `make e2e` sets it)."""

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from test_mcp_registry import Aos, call, free_port, wait_for_port, tenant_with_keys

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "mcp-tools"
BASE = "/api/v1/integrations/mcp-servers"


@pytest.fixture()
def aos():
    with tempfile.TemporaryDirectory() as data_dir:
        server = Aos(data_dir).start()
        yield server
        server.stop()


def serve(definitions, workdir):
    path = Path(workdir) / f"tools-{len(definitions)}-{free_port()}.json"
    path.write_text(json.dumps(definitions))
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "scripted_server.py"), str(port), str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    return proc, f"http://127.0.0.1:{port}/mcp"


def register(aos, key, name, url):
    status, body = call(aos.base, key, "POST", BASE, {"name": name, "url": url})
    assert status == 201, body
    server = body["data"]["server"]["id"]
    status, tools = call(aos.base, key, "GET", f"{BASE}/{server}/tools?include_unavailable=true")
    assert status == 200, tools
    return {t["name"]: t for t in tools["data"]}


def test_the_corpus_is_flagged_and_real_tools_are_not(aos):
    (_, key), = tenant_with_keys(aos, "poison-e2e", ["mcp:admin", "mcp:read"])
    # The real definitions in a tenant of their own: two servers of one tenant serving the
    # same name is itself a finding (name-collision).
    (_, real_key), = tenant_with_keys(aos, "real-e2e", ["mcp:admin", "mcp:read"])
    poisoned = json.load(open(FIXTURES / "poisoned.json"))
    benign = json.load(open(FIXTURES / "benign.json"))
    procs = []
    with tempfile.TemporaryDirectory() as workdir:
        try:
            # The tenant's other servers first: the tools the cross-tool families shadow or
            # imitate, each server under its own name.
            others = {}
            for entry in poisoned:
                for n in entry.get("catalog", []):
                    others.setdefault(n["server"], {})[n["tool"]] = {
                        "name": n["tool"], "description": "A real tool.",
                        "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}},
                        "annotations": {"readOnlyHint": True}}
            for server, tools in others.items():
                proc, url = serve(list(tools.values()), workdir)
                procs.append(proc)
                register(aos, key, server, url)
            # The corpus on one server per batch (names are unique within a batch), the
            # real definitions on another.
            verdicts = {}
            for batch in sorted({e["batch"] for e in poisoned}):
                entries = [e for e in poisoned if e["batch"] == batch]
                proc, url = serve(entries, workdir)
                procs.append(proc)
                listed = register(aos, key, f"corpus-{batch}", url)
                for e in entries:
                    verdicts[(batch, e["name"])] = (e["family"], listed.get(e["name"]))
            proc, url = serve(benign, workdir)
            procs.append(proc)
            real = register(aos, real_key, "real", url)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)

    missed = Counter()
    for (batch, name), (family, tool) in verdicts.items():
        assert tool is not None, f"{name} was not discovered"
        if not tool["flags"]:
            missed[family] += 1
            continue
        assert tool["risk_level"] in ("HIGH", "CRITICAL"), tool
        assert tool["enabled"] is False, tool
    assert not missed, f"missed per family: {dict(missed)}"
    flagged = [name for name, t in real.items() if t["flags"]]
    assert len(real) == 99 and flagged == [], flagged
