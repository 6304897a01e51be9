"""The runtime's SigV4 signer (:class:`providers.bedrock.signing.Signer`): its caches (parsed
credentials, derived signing keys, endpoint hosts) never change a signature.

Every signature is compared with one made by botocore's plain ``SigV4Auth`` over a plain
``AWSRequest`` at the same instant, and checked by the emulator's verifier.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from providers.bedrock.signing import AwsCredentials, Signer
from tests.emulator.bedrock_validation import verify_signature

MODEL_URL = "https://bedrock-runtime.{region}.amazonaws.com/model/{model}/converse"
IDENTITY = AwsCredentials("AKIDSIGNER", "secret/signer+key", "session-token")
SIGNED = ("content-type", "x-amzn-bedrock-guardrailidentifier")


class Clock:
    """botocore's signing clock, set by the test."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fixed = Clock(datetime.datetime(2026, 3, 14, 12, 0, 0))
    monkeypatch.setattr(botocore.auth, "get_current_datetime", fixed)
    yield fixed


def plain_botocore(
    url: str, headers: dict[str, str], body: bytes, identity: AwsCredentials, region: str
) -> dict[str, str]:
    """The SigV4 headers botocore's own signer gives, nothing cached or replaced."""
    to_sign = {name: value for name, value in headers.items() if name in SIGNED}
    request = AWSRequest(method="POST", url=url, data=body, headers=to_sign)
    credentials = Credentials(
        identity.access_key_id, identity.secret_access_key, identity.session_token
    )
    SigV4Auth(credentials, "bedrock", region).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def check(
    signer: Signer,
    url: str,
    headers: dict[str, str],
    body: bytes,
    identity: AwsCredentials,
    region: str,
    now: datetime.datetime,
) -> dict[str, str]:
    signed = signer.auth_headers("POST", url, headers, body, identity.encode(), region)
    expected = plain_botocore(url, headers, body, identity, region)
    for name in ("authorization", "x-amz-date", "x-amz-security-token"):
        assert signed.get(name) == expected.get(name), name
    known = {identity.access_key_id: (identity.secret_access_key, identity.session_token)}
    assert verify_signature("POST", url, signed, body, known, region, now=now) == (
        identity.access_key_id
    )
    return signed


def test_cached_signing_keys_give_botocore_s_signatures_across_many_requests(
    clock: Clock,
) -> None:
    signer = Signer()
    other = AwsCredentials("AKIDOTHER", "another/secret")
    for i in range(60):
        identity = IDENTITY if i % 3 else other
        region = "us-east-1" if i % 2 else "eu-west-1"
        model = ("us.amazon.nova-pro-v1%3A0", "anthropic.claude-v2")[i % 2]
        headers = {"content-type": "application/json", "accept": "application/json"}
        if i % 5 == 0:
            headers["x-amzn-bedrock-guardrailidentifier"] = f"  guard   {i} "
        body = b'{"messages":[{"role":"user","content":[{"text":"%d"}]}]}' % i
        clock.now = datetime.datetime(2026, 3, 14, 12, 0, i)
        signed = check(
            signer, MODEL_URL.format(region=region, model=model), headers, body,
            identity, region, clock.now,
        )
        assert signed["accept"] == "application/json" and "host" not in signed
    # one derived key per identity and region for the day: nothing else was derived again
    assert signer.cached_signing_keys == 4


def test_a_new_date_derives_a_new_signing_key(clock: Clock) -> None:
    signer = Signer()
    url = MODEL_URL.format(region="us-west-2", model="us.amazon.nova-lite-v1%3A0")
    headers = {"content-type": "application/json"}
    clock.now = datetime.datetime(2026, 3, 14, 23, 59, 59)
    before = check(signer, url, headers, b"{}", IDENTITY, "us-west-2", clock.now)
    assert signer.cached_signing_keys == 1
    clock.now = datetime.datetime(2026, 3, 15, 0, 0, 1)
    after = check(signer, url, headers, b"{}", IDENTITY, "us-west-2", clock.now)
    assert signer.cached_signing_keys == 2
    assert "/20260314/us-west-2/bedrock/aws4_request" in before["authorization"]
    assert "/20260315/us-west-2/bedrock/aws4_request" in after["authorization"]
    assert before["authorization"].rsplit("=", 1)[1] != after["authorization"].rsplit("=", 1)[1]


def test_a_full_cache_drops_its_oldest_entries_and_still_signs_right(clock: Clock) -> None:
    signer = Signer(size=2)
    url = MODEL_URL.format(region="us-east-1", model="amazon.titan-text-express-v1")
    identities = [AwsCredentials(f"AKID{i}", f"secret-{i}") for i in range(5)]
    for _ in range(2):
        for identity in identities:
            check(signer, url, {"content-type": "application/json"}, b"{}", identity,
                  "us-east-1", clock.now)
            assert signer.cached_signing_keys <= 2


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/model/m/converse",  # a VPC or test endpoint: the port is signed
        "http://[::1]:9000/model/m/converse",
        "https://BEDROCK-runtime.us-east-1.amazonaws.com:443/model/m/converse",  # default port
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse?x=1",
        "http://127.0.0.1:8080/model/./x/../arn%3Aaws%3Abedrock%2Fp~q r/invoke",  # canonicalised
    ],
)
def test_the_remembered_host_and_path_are_botocore_s(clock: Clock, url: str) -> None:
    signer = Signer()
    for _ in range(3):  # the first derives the host and the path, the others reuse them
        check(signer, url, {"content-type": "application/json"}, b"{}", IDENTITY, "us-east-1",
              clock.now)


def test_a_bedrock_api_key_is_a_bearer_token_every_time() -> None:
    signer = Signer()
    for _ in range(2):
        headers = signer.auth_headers(
            "POST", "https://x/", {"X-Amz-Date": "1", "Accept": "a"}, b"", " brk-key ", "us-east-1"
        )
        assert headers == {"accept": "a", "authorization": "Bearer brk-key"}
