"""Micro-benchmark: SigV4 signing of one Bedrock request (budget: p50 <= 100 us).

What a translated Bedrock request pays on top of any other provider's: looking up the
credential string and signing the final URL and body with SigV4
(:meth:`providers.bedrock.signing.Signer.auth_headers` on one long-lived signer, exactly the
call the router makes on the runtime's). The
request is a Converse call of a typical chat turn (a system prompt, a few messages, two tools:
about 2 KB of JSON) to a cross-region inference profile, with a session token (the heaviest
header set). Timed one call at a time with ``perf_counter_ns`` after a warm-up; the figures
are per request. Each call is followed by one of botocore's plain ``SigV4Auth`` over a fresh
``AWSRequest`` of the same request (what the gateway signed with before its own signer), timed
the same way, so that the two are compared under the same load of a shared machine::

    python -m bench.sigv4 [--requests 20000] [--json]

Exit status 1 when the p50 is over budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.load import percentile
from providers.bedrock import chat_to_converse, endpoint_url, model_path
from providers.bedrock.signing import Signer

BUDGET_US = 100.0
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
KEY = "AKIDBENCHMARK0000001:bench/secret+access/key00000000000000000:" + "T" * 600
"""Access key, secret and a session token of STS's usual length."""
CHAT = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a careful assistant. " * 10},
        {"role": "user", "content": "What is the weather in Paris today? " * 5},
        {"role": "assistant", "content": "Let me look that up for you. " * 5},
        {"role": "user", "content": "And tomorrow, in Lyon and in Marseille? " * 5},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": "Look up the forecast for a city and a day.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "day": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
        for name in ("forecast", "history")
    ],
    "max_tokens": 1024,
}


def botocore_signer(url: str, content_type: str, body: bytes) -> Callable[[], None]:
    """One signature of the request by botocore's plain signer (same headers signed)."""
    access, secret, token = KEY.split(":")
    credentials = Credentials(access, secret, token)

    def sign() -> None:
        signed = {"content-type": content_type}
        request = AWSRequest(method="POST", url=url, headers=signed, data=body)
        SigV4Auth(credentials, "bedrock", "us-east-1").add_auth(request)

    return sign


def measure(requests: int) -> dict[str, float]:
    """Per-request signing times (microseconds): p50, p90, p99, mean; botocore's p50."""
    body = orjson.dumps(chat_to_converse(CHAT, claude=True, default_max_tokens=1024))
    url = endpoint_url("us-east-1") + model_path(MODEL, "converse")
    headers = {"content-type": "application/json", "accept": "application/json"}
    auth_headers = Signer().auth_headers
    reference = botocore_signer(url, headers["content-type"], body)
    for _ in range(min(1000, requests)):  # warm-up: imports, caches
        auth_headers("POST", url, headers, body, KEY, "us-east-1")
        reference()
    samples: list[float] = []
    botocore: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(requests):
        started = clock()
        auth_headers("POST", url, headers, body, KEY, "us-east-1")
        signed = clock()
        reference()
        samples.append((signed - started) / 1000)
        botocore.append((clock() - signed) / 1000)
    samples.sort()
    return {
        "requests": requests,
        "body_bytes": len(body),
        "p50_us": percentile(samples, 50),
        "p90_us": percentile(samples, 90),
        "p99_us": percentile(samples, 99),
        "mean_us": sum(samples) / len(samples),
        "budget_p50_us": BUDGET_US,
        "botocore_p50_us": percentile(sorted(botocore), 50),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sigv4", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = measure(max(1, args.requests))
    ok = result["p50_us"] <= BUDGET_US
    if args.json:
        print(json.dumps({**result, "ok": ok}))
    else:
        print(
            f"SigV4 signing ({result['body_bytes']} B body, {args.requests} requests): "
            f"p50 {result['p50_us']:.1f} us, p90 {result['p90_us']:.1f} us, "
            f"p99 {result['p99_us']:.1f} us (budget p50 <= {BUDGET_US:.0f} us: "
            f"{'ok' if ok else 'OVER'}); botocore's plain SigV4Auth, interleaved: "
            f"p50 {result['botocore_p50_us']:.1f} us"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
