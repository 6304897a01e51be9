"""End to end: Helicone's npm ``@helicone/helpers`` ``HeliconePromptManager`` against a real
gateway (issue 17, item 4), as tests/test_manual_log_e2e.py runs its manual logger.

``tests/node/prompt_manager.mjs`` points the manager's ``baseUrl`` at the gateway and calls
what a Node app calls: ``pullPromptVersion`` (production, an environment, a version id),
``pullPromptBodyByVersionId`` (the signed ``s3_url``, fetched without a key),
``getPromptBody`` (client-side merge) and the partial helpers. What the SDK assembles is
compared with what the gateway itself forwards for the same request (``prompt_id`` on
``/v1/chat/completions``, seen by the OpenAI emulator).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests import test_prompts_e2e
from tests.test_prompts_e2e import SAVED, Gateway

gateway = test_prompts_e2e.gateway
NODE_DIR = Path(__file__).resolve().parent / "node"
STAGED = {
    **SAVED,
    "messages": [{"role": "system", "content": "Staging support for {{hc:company:string}}."}],
}
RUNTIME = {
    "inputs": {"company": "Acme Corp"},
    "model": "gpt-4o-mini",
    "temperature": 0.4,
    "messages": [{"role": "user", "content": "Actually, I want to cancel my subscription."}],
}


def run_node(gateway: Gateway, **ids: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js is required for the @helicone/helpers tests"
    assert (NODE_DIR / "node_modules" / "@helicone" / "helpers").is_dir(), (
        "tests/node/node_modules is missing: run `npm ci --prefix tests/node` (make install "
        "and .ci/run do)"
    )
    done = subprocess.run(
        [node, str(NODE_DIR / "prompt_manager.mjs")], cwd=NODE_DIR, capture_output=True,
        text=True, timeout=120, check=False,
        env={**os.environ, "GATEWAY_URL": gateway.server.url, "GATEWAY_KEY": gateway.key, **ids},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def forwarded_for(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """What the gateway sends upstream for ``body`` (a request naming a prompt)."""
    response = gateway.call("POST", "/v1/chat/completions", body)
    assert response.status_code == 200, response.text
    return gateway.forwarded()


def test_node_prompt_manager_fetches_and_assembles(gateway: Gateway) -> None:
    created = gateway.create(SAVED, name="Node support")
    staged = gateway.data(
        "POST",
        "/v1/prompt-2025/update",
        {
            "promptId": created["id"],
            "promptVersionId": created["versionId"],
            "environment": "staging",
            "commitMessage": "staging copy",
            "promptBody": STAGED,
        },
    )["id"]
    partial = gateway.create(
        {
            "messages": [
                {
                    "role": "system",
                    "content": "Hello {{hc:customer_name:string}}, welcome to "
                    "{{hc:company:string}}!",
                }
            ]
        },
        name="node greeting",
    )
    main = gateway.create(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "user", "content": f"{{{{hcp:{partial['id']}:0}}}} How can you help me?"}
            ],
        },
        name="node main",
    )
    typed = gateway.create(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "{{hc:age:number}}"}]},
        name="node typed",
    )
    out = run_node(
        gateway,
        PROMPT_ID=created["id"],
        STAGING_VERSION_ID=staged,
        MAIN_ID=main["id"],
        TYPED_ID=typed["id"],
    )

    production = out["production"]
    assert production["id"] == created["versionId"] and production["prompt_id"] == created["id"]
    assert production["environment"] == "production" and production["environments"] == [
        "production"
    ]
    assert (production["major_version"], production["minor_version"]) == (0, 0)
    assert production["model"] == "gpt-4o-mini" and production["s3_url"]
    assert out["staging"]["id"] == staged and out["staging"]["environment"] == "staging"
    assert (out["staging"]["major_version"], out["staging"]["minor_version"]) == (0, 1)
    assert out["byVersion"]["id"] == staged
    assert out["stagingBody"] == STAGED  # through the signed link, without a key

    # The SDK's merge and the gateway's give the same request. The SDK also sends
    # "tools": [] (upstream always sets it); the gateway omits an empty list (E.9 5).
    for name, extra in (("compiled", {}), ("compiledStaging", {"environment": "staging"})):
        compiled = out[name]
        assert compiled["errors"] == [], name
        body = compiled["body"]
        assert body.pop("tools") == [], name
        sent = forwarded_for(gateway, {"prompt_id": created["id"], **RUNTIME, **extra})
        assert body == sent, name
    assert [m["content"] for m in out["compiled"]["body"]["messages"]] == [
        "You are a helpful customer support agent for Acme Corp.",
        "Hello, I need help with my account.",
        "Actually, I want to cancel my subscription.",
    ]
    assert out["compiledStaging"]["body"]["messages"][0]["content"] == (
        "Staging support for Acme Corp."
    )

    merged = out["partials"]
    assert merged["errors"] == []
    text = "Hello Alice, welcome to TechCorp! How can you help me?"
    assert merged["body"]["messages"][0]["content"] == text
    inputs = {"customer_name": "Alice", "company": "TechCorp"}
    sent = forwarded_for(gateway, {"prompt_id": main["id"], "inputs": inputs})
    assert sent["messages"][0]["content"] == text

    # A bad typed input: the SDK reports it, the gateway refuses the request (400).
    assert out["typedBad"]["errors"] == [{"variable": "age", "expected": "number", "value": "abc"}]
    refused = gateway.call("POST", "/v1/chat/completions", {"prompt_id": typed["id"],
                                                             "inputs": {"age": "abc"}})  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "Variable 'age' is 'number' but got 'abc'"
    # Unknown prompt and environment: the gateway's 404s reach the SDK as its own errors.
    assert out["unknown"]["error"].startswith("Failed to get production version")
    assert out["unknownEnvironment"]["error"].startswith("Failed to get environment version")
