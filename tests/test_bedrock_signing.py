"""The gateway's SigV4 signer (:class:`providers.bedrock.signing.Signer`) against botocore's.

Every signature is compared, byte for byte, with the one botocore's plain ``SigV4Auth`` gives
over a plain ``AWSRequest`` at the same frozen instant (the ``Authorization`` header and every
signed header), over many random requests, and checked by the emulator's verifier; one is
compared with what a real boto3 ``bedrock-runtime`` client sends. The signer's caches (parsed
credentials, derived signing keys, URLs, the date text) never change a signature.
"""

from __future__ import annotations

import datetime
import random
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from providers.bedrock.models import Operation, model_path
from providers.bedrock.signing import AwsCredentials, Signer
from tests.emulator.bedrock_validation import verify_signature

MODEL_URL = "https://bedrock-runtime.{region}.amazonaws.com/model/{model}/converse"
IDENTITY = AwsCredentials("AKIDSIGNER", "secret/signer+key", "session-token")


class Clock:
    """One frozen instant for both signers: botocore's ``get_current_datetime`` and the
    ``clock`` of a :class:`Signer` (seconds since the epoch)."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.replace(tzinfo=datetime.UTC).timestamp()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fixed = Clock(datetime.datetime(2026, 3, 14, 12, 0, 0))
    monkeypatch.setattr(botocore.auth, "get_current_datetime", fixed)
    yield fixed


def plain_botocore(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    identity: AwsCredentials,
    region: str,
) -> dict[str, str]:
    """The headers botocore's own signer gives a request of the headers the gateway signs
    (``content-type``, ``x-amzn-bedrock-*``), nothing cached or replaced."""
    to_sign = {
        name: value
        for name, value in headers.items()
        if name.lower() == "content-type" or name.lower().startswith("x-amzn-bedrock-")
    }
    request = AWSRequest(method=method, url=url, data=body, headers=to_sign)
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
    method: str = "POST",
) -> dict[str, str]:
    """Sign with ``signer``; assert botocore's headers, byte for byte, and the verifier."""
    signed = signer.auth_headers(method, url, headers, body, identity.encode(), region)
    expected = plain_botocore(method, url, headers, body, identity, region)
    assert signed["authorization"] == expected["authorization"]
    names = expected["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "host" in names and "host" not in signed  # the HTTP client sends the URL's own
    for name in names:
        if name != "host":
            assert signed[name] == expected[name], name
    known = {identity.access_key_id: (identity.secret_access_key, identity.session_token)}
    assert verify_signature(method, url, signed, body, known, region, now=now) == (
        identity.access_key_id
    )
    return signed


# --- random requests ------------------------------------------------------------------------------

MODELS = (
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "eu.amazon.nova-pro-v1:0",
    "apac.meta.llama3-2-90b-instruct-v1:0",
    "mistral.mistral-large-2407-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
    "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abc123def",
    "arn:aws:bedrock:eu-west-1::foundation-model/amazon.titan-text-express-v1",
)
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "us-gov-west-1")
OPERATIONS: tuple[Operation, ...] = (
    "converse", "converse-stream", "invoke", "invoke-with-response-stream"
)
ORIGINS = (
    "https://bedrock-runtime.{region}.amazonaws.com",
    "https://bedrock-runtime-fips.{region}.amazonaws.com",
    "https://BEDROCK-Runtime.{region}.AmazonAWS.com:443",
    "http://127.0.0.1:8080",
    "http://localhost:80",
    "http://[::1]:9000",
    "https://vpce-0abc.bedrock-runtime.{region}.vpce.amazonaws.com:8443",
)
ODD = string.ascii_letters + string.digits + "-._~:/@!$&'()*+,;= %é€"


def random_model(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return rng.choice(MODELS)
    return "".join(rng.choice(ODD) for _ in range(rng.randint(1, 24)))


def random_path(rng: random.Random, model: str) -> str:
    operation = rng.choice(OPERATIONS)
    spelling = rng.randrange(5)
    if spelling == 0:  # the gateway's own: the id as one segment (``:`` → %3A, ``/`` → %2F)
        return model_path(model, operation)
    if spelling == 1:  # a client that leaves ``:`` as it is
        return f"/model/{quote(model, safe=':')}/{operation}"
    if spelling == 2:  # dot segments and doubled slashes, canonicalised by the signature
        return f"/model/./{quote(model, safe='')}//{operation}/../{operation}"
    if spelling == 3:  # a trailing slash
        return f"/model/{quote(model, safe='')}/{operation}/"
    return f"/model/{quote(quote(model, safe=''), safe='')}/{operation}"  # encoded twice


def random_query(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return ""
    pairs = []
    for _ in range(rng.randint(1, 4)):
        name = rng.choice(["b", "a", "x-id", "trace", "A", "a%20b", "z~"])
        value = rng.choice(["", "1", "0", "v%2Fw", "ENABLED", "a b".replace(" ", "%20")])
        pairs.append(name if rng.random() < 0.1 else f"{name}={value}")
    return "?" + "&".join(pairs)


def random_headers(rng: random.Random) -> dict[str, str]:
    headers: dict[str, str] = {}
    if rng.random() < 0.9:
        headers[rng.choice(["content-type", "Content-Type", "CONTENT-TYPE"])] = rng.choice(
            ["application/json", " application/json ", "application/json;  charset=utf-8"]
        )
    headers["accept"] = rng.choice(["application/json", "application/vnd.amazon.eventstream"])
    if rng.random() < 0.3:
        headers["X-Amzn-Bedrock-GuardrailIdentifier"] = f"  guard \t {rng.randint(0, 99)}  "
    if rng.random() < 0.3:
        headers["x-amzn-bedrock-trace"] = rng.choice(["ENABLED", "DISABLED"])
    if rng.random() < 0.3:
        headers["x-amzn-bedrock-performanceconfig-latency"] = "optimized"
    if rng.random() < 0.2:  # a client's own signature: replaced
        headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=stale"
        headers["X-Amz-Date"] = "19990101T000000Z"
        headers["x-amz-security-token"] = "stale-token"
    if rng.random() < 0.3:
        headers["user-agent"] = "openai/1.0"  # sent, not signed
    return headers


def random_identity(rng: random.Random) -> AwsCredentials:
    secret = "".join(rng.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))
    access = "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    token = None
    if rng.random() < 0.5:
        alphabet = string.ascii_letters + string.digits + "/+="
        token = "".join(rng.choice(alphabet) for _ in range(600))
    return AwsCredentials(access, secret, token)


def random_body(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return b""
    if kind == 1:
        return rng.randbytes(rng.randint(1, 5000))
    text = "é" * rng.randint(0, 99)
    return f'{{"messages":[{{"role":"user","content":[{{"text":"{text}"}}]}}]}}'.encode()


def test_random_requests_are_signed_as_botocore_signs_them(clock: Clock) -> None:
    rng = random.Random(20260314)
    identities = [random_identity(rng) for _ in range(6)]
    signer = Signer(clock=clock.seconds)
    for _ in range(600):
        region = rng.choice(REGIONS)
        url = (
            rng.choice(ORIGINS).format(region=region)
            + random_path(rng, random_model(rng))
            + random_query(rng)
        )
        clock.now = datetime.datetime(2026, 1, 1) + datetime.timedelta(
            seconds=rng.randrange(400 * 86400)
        )
        check(
            signer, url, random_headers(rng), random_body(rng), rng.choice(identities), region,
            clock.now, method=rng.choice(["POST", "POST", "GET", "post"]),
        )


def test_a_boto3_client_s_own_request_gets_the_same_signature(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3's ``bedrock-runtime`` client signs ``content-type``, ``host``, ``x-amz-date`` and
    the session token (no payload-hash header): the gateway's signature of the URL and body
    boto3 sends is boto3's own."""
    sent: dict[str, Any] = {}

    def intercept(request: Any, **_: Any) -> None:
        sent.update(url=request.url, body=request.body, headers=dict(request.headers))
        raise _Sent

    client = boto3.client(
        "bedrock-runtime",
        region_name="eu-west-1",
        aws_access_key_id=IDENTITY.access_key_id,
        aws_secret_access_key=IDENTITY.secret_access_key,
        aws_session_token=IDENTITY.session_token,
    )
    client.meta.events.register("before-send.bedrock-runtime.*", intercept)
    model = (
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/"
        "eu.anthropic.claude-3-5-sonnet-20240620-v1:0"
    )
    with pytest.raises(_Sent):
        client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    headers = {name.lower(): value.decode() for name, value in sent["headers"].items()
               if isinstance(value, bytes)}
    assert "x-amz-content-sha256" not in headers
    assert sent["url"].endswith(model_path(model, "converse"))  # the gateway's own spelling
    signed = Signer(clock=clock.seconds).auth_headers(
        "POST", sent["url"], {"content-type": headers["content-type"]}, sent["body"],
        IDENTITY.encode(), "eu-west-1",
    )
    for name in ("authorization", "x-amz-date", "x-amz-security-token", "content-type"):
        assert signed[name] == headers[name], name


class _Sent(Exception):
    """Stops boto3 before its request leaves."""


# --- caches ---------------------------------------------------------------------------------------


def test_cached_signing_keys_give_botocore_s_signatures_across_many_requests(
    clock: Clock,
) -> None:
    signer = Signer(clock=clock.seconds)
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
        assert signed["accept"] == "application/json"
    # one derived key per identity and region for the day: nothing else was derived again
    assert signer.cached_signing_keys == 4


def test_a_new_date_derives_a_new_signing_key(clock: Clock) -> None:
    signer = Signer(clock=clock.seconds)
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


def test_the_date_follows_the_clock_second_by_second(clock: Clock) -> None:
    signer = Signer(clock=lambda: clock.seconds() + 0.999)  # a fraction never rounds up
    url = MODEL_URL.format(region="us-east-1", model="m")
    for second in (0, 0, 1, 59):
        clock.now = datetime.datetime(2026, 3, 14, 12, 0, second)
        signed = check(signer, url, {}, b"", IDENTITY, "us-east-1", clock.now)
        assert signed["x-amz-date"] == f"20260314T1200{second:02d}Z"


def test_a_full_cache_drops_its_oldest_entries_and_still_signs_right(clock: Clock) -> None:
    signer = Signer(size=2, clock=clock.seconds)
    identities = [AwsCredentials(f"AKID{i}", f"secret-{i}") for i in range(5)]
    for _ in range(2):
        for i, identity in enumerate(identities):
            url = MODEL_URL.format(region="us-east-1", model=f"amazon.titan-text-express-v{i}")
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
        "https://bedrock-runtime.us-east-1.amazonaws.com",  # no path at all: "/"
    ],
)
def test_the_remembered_host_and_path_are_botocore_s(clock: Clock, url: str) -> None:
    signer = Signer(clock=clock.seconds)
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
