"""End to end: the official `openai` Python SDK (PyPI), unchanged, against AOS's
OpenAI-compatible proxy in front of a local fake upstream (`aos-fake-llm`): chat,
streaming, embeddings, models, a guardrail refusal, an exhausted budget and a frozen key,
each seen through the SDK's own types and exceptions.

Needs AOS_SERVER_BIN and AOS_FAKE_LLM_BIN (the built binaries; `make e2e` sets them)."""

import os
import subprocess
import tempfile
import time
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from test_mcp_registry import Aos, call, tenant_with_keys, wait_for_port

UPSTREAM_KEY = "sk-upstream-e2e-0123456789abcdef"


def start_fake_llm():
    proc = subprocess.Popen(
        [os.environ["AOS_FAKE_LLM_BIN"]],
        env={**os.environ, "AOS_FAKE_LLM_KEY": UPSTREAM_KEY},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("READY "), line
    port = int(line.split()[1])
    wait_for_port(port, proc)
    return proc, port


@pytest.fixture()
def aos_proxy():
    fake, port = start_fake_llm()
    with tempfile.TemporaryDirectory() as data_dir:
        key_file = Path(data_dir) / "upstream-key"
        key_file.write_text(UPSTREAM_KEY)
        config = Path(data_dir) / "aos.toml"
        config.write_text(f"""
[proxy.providers.fake]
base_url = "http://127.0.0.1:{port}/v1"
credential_ref = "file://{key_file}"

[proxy.models]
"gpt-4o-mini" = "fake"
"text-embedding-3-small" = "fake"
""")
        server = Aos(data_dir, {"AOS_CONFIG": str(config)}).start()
        try:
            yield server
        finally:
            server.stop()
            fake.terminate()
            fake.wait(timeout=10)


def test_openai_sdk_through_the_proxy(aos_proxy):
    aos = aos_proxy
    (_, admin), (agent_id, agent) = tenant_with_keys(aos, "proxy-e2e", ["admin"], ["proxy:invoke"])
    client = OpenAI(base_url=f"{aos.base}/v1", api_key=agent, max_retries=0)

    # Chat, as the SDK types it.
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}])
    assert reply.choices[0].message.content == "word0 word1 word2 word3 word4"
    assert reply.usage.completion_tokens == 5

    # Streaming: deltas arrive one by one; no usage chunk unless asked for.
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[chunks:4]] go"}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == " word0 word1 word2 word3"
    assert all(c.usage is None for c in chunks)
    with_usage = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[chunks:2]]"}], stream=True,
        stream_options={"include_usage": True}))
    assert with_usage[-1].usage.completion_tokens == 2

    # Embeddings and models.
    embeddings = client.embeddings.create(model="text-embedding-3-small", input=["a", "bb"])
    assert len(embeddings.data) == 2 and len(embeddings.data[0].embedding) == 8
    assert {m.id for m in client.models.list()} == {"gpt-4o-mini", "text-embedding-3-small"}

    # A guardrail refusal: the SDK's BadRequestError, naming the guardrail.
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "my key is sk-proj-abcdefghijklmnopqrstuvwxyz123456"}])
    assert refused.value.code == "guardrail_blocked"
    assert refused.value.body["guardrail"] == "secrets.api_key"

    # An exhausted budget: a RateLimitError with code budget_exceeded; nothing spent.
    status, body = call(aos.base, admin, "PUT", "/api/v1/proxy/settings", {"budget": {"daily_limit_micros": 0}})
    assert status == 200, body
    with pytest.raises(openai.RateLimitError) as exhausted:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert exhausted.value.code == "budget_exceeded"
    status, body = call(aos.base, admin, "PUT", "/api/v1/proxy/settings", {})
    assert status == 200, body

    # A frozen key: 423 with code kill_switch_active, then back after the unfreeze.
    status, body = call(aos.base, admin, "POST", f"/api/v1/killswitch/keys/{agent_id}/freeze", {"reason": "e2e"})
    assert status == 200, body
    with pytest.raises(openai.APIStatusError) as frozen:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert frozen.value.status_code == 423
    assert frozen.value.code == "kill_switch_active"
    status, body = call(aos.base, admin, "POST", f"/api/v1/killswitch/keys/{agent_id}/unfreeze")
    assert status == 200, body
    assert client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content

    # Every call is in the log (written in the background: wait for it), none with the
    # upstream key; the pulse shows today's spend.
    deadline = time.monotonic() + 10
    while True:
        status, calls = call(aos.base, admin, "GET", "/api/v1/proxy/calls?limit=50")
        assert status == 200, calls
        statuses = sorted(c["status"] for c in calls["data"])
        if len(statuses) >= 8 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert statuses.count("ok") >= 5 and "blocked" in statuses and "frozen" in statuses, statuses
    assert "budget_exceeded" in statuses, statuses
    assert UPSTREAM_KEY not in str(calls)
    status, pulse = call(aos.base, agent, "GET", "/v1/status")
    assert status == 200, pulse
    assert pulse["status"] == "active"
    tenant_today = next(b for b in pulse["budgets"] if b["scope"] == "tenant" and b["period"].startswith("day:"))
    assert tenant_today["spent_micros"] > 0, pulse
