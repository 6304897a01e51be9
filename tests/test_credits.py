"""Credit accounts: the estimate, the store's reserve/settle arithmetic, and metering end to
end (real SDK / HTTP → gateway → emulators), with request logging off throughout.

* an organisation without an account is unmetered (the managed key, nothing written);
* with one, a credits attempt holds its worst-case cost while in flight and settles to the
  cost of the usage the answer reports (whole or streamed), a failed attempt releases;
* an exhausted balance fails that attempt with 429 "Insufficient credits", which fails over
  to the org's own key (BYOK);
* holds left by a crash are released by the sweep (at startup and periodically);
* 50 concurrent requests through two gateways sharing one database (SQLite file, PostgreSQL)
  never overspend: exactly the affordable number is served on credits.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from sqlalchemy import text

from gateway.metering import AmountError, nano_to_usd, usd_to_nano
from gateway.metering.estimate import output_tokens, prompt_tokens, worst_case_nano
from gateway.settings import Settings
from gateway.store import (
    BudgetRefused,
    ControlStore,
    CreditsRefused,
    Deployment,
    generate_key,
)
from providers.cost import ModelPrice, PriceTier
from providers.usage import Usage
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, make_settings

MANAGED, OWN = "sk-managed", "sk-own-groq"
CHAIN = "gpt-4o-mini/openai,llama-3.3-70b/groq"
MESSAGES = [{"role": "user", "content": "how much does this cost"}]
USD = 10**9


# --- the estimate and amounts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text_", "nano"),
    [
        ("12.5", 12_500_000_000),
        ("0.000000001", 1),
        ("-3", -3_000_000_000),
        ("1e2", 100_000_000_000),
        (" 0.10 ", 100_000_000),
    ],
)
def test_usd_amounts_convert_exactly(text_: str, nano: int) -> None:
    assert usd_to_nano(text_) == nano
    assert Decimal(nano_to_usd(nano)) == Decimal(text_.strip())


@pytest.mark.parametrize("bad", ["1.0000000001", "abc", "NaN", "Infinity", "1e30", ""])
def test_amounts_that_are_not_whole_nano_usd_are_refused(bad: str) -> None:
    with pytest.raises(AmountError):
        usd_to_nano(bad)


def test_nano_amounts_print_with_at_least_two_decimals() -> None:
    assert nano_to_usd(12_500_000_000) == "12.50"
    assert nano_to_usd(1) == "0.000000001"
    assert nano_to_usd(-250_000_000) == "-0.25"
    assert nano_to_usd(0) == "0.00"


PRICE = ModelPrice(
    model="m",
    provider="p",
    provider_model_id="m",
    input=Fraction(3, 20),  # 0.15 USD / 1M
    output=Fraction(3, 5),  # 0.60 USD / 1M
    cache_write=Fraction(3, 16),  # 0.1875: dearer than input
    reasoning=Fraction(1),  # dearer than output
    tiers=(PriceTier(above_prompt_tokens=10_000, input=Fraction(3, 10)),),
    context_window=50_000,
)


def test_worst_case_takes_the_dearest_rate_of_each_side_rounded_up() -> None:
    # 1,000 prompt tokens at 0.1875/1M = 187,500 nano; 100 output at 1/1M = 100,000 nano.
    assert worst_case_nano(PRICE, 1000, 100) == 287_500
    # 3 tokens at 0.1875/1M = 562.5 nano: rounded up, never down.
    assert worst_case_nano(PRICE, 3, 0) == 563
    # Above the tier the tier's input (0.30) is dearer than the base cache write.
    assert worst_case_nano(PRICE, 20_000, 0) == 6_000_000
    # The worst case covers any split of the same counts.
    for usage in (
        Usage(1000, 100),
        Usage(1000, 100, cache_write_tokens=1000, reasoning_tokens=100),
        Usage(1000, 100, cache_read_tokens=500),
    ):
        assert PRICE.cost(usage).nano_usd <= worst_case_nano(PRICE, 1000, 100)


def test_prompt_estimate_is_half_the_body_size_capped_by_the_window() -> None:
    assert prompt_tokens(101, None) == 51
    assert prompt_tokens(1_000_000, 50_000) == 50_000


def test_output_estimate() -> None:
    assert output_tokens({"max_tokens": 20}, "/chat/completions", 16_384) == 20
    assert output_tokens({"max_completion_tokens": 30, "max_tokens": 20}, "/x", None) == 30
    assert output_tokens({"max_output_tokens": 99_999}, "/responses", 16_384) == 16_384
    assert output_tokens({"max_tokens": 20, "n": 3}, "/chat/completions", None) == 60
    assert output_tokens({}, "/chat/completions", 16_384) == 16_384
    assert output_tokens(None, "/chat/completions", None) == 4096
    assert output_tokens({"max_tokens": 20}, "/v1/embeddings", None) == 0


# --- the store: reserve / settle / release / sweep, SQLite and PostgreSQL -------------------


async def _wipe_postgres(url: str) -> None:
    store = ControlStore(url)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database_url")
        asyncio.run(_wipe_postgres(url))
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"


async def _store_with_org(url: str) -> tuple[ControlStore, str]:
    store = ControlStore(url)
    await store.migrate()
    return store, await store.ensure_org(f"org-{uuid.uuid4().hex[:8]}")


def test_the_migrations_match_the_mapping(database_url: str) -> None:
    """Migration 0003 creates exactly what gateway/store/_schema.py maps."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from gateway.store._schema import Base

    async def run() -> list[Any]:
        store, _ = await _store_with_org(database_url)
        try:
            async with store.engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True}),
                        Base.metadata,
                    )
                )
        finally:
            await store.close()

    assert asyncio.run(run()) == []


def test_reserve_and_settle_are_exact(database_url: str) -> None:
    async def run() -> None:
        store, org = await _store_with_org(database_url)
        credits = store.credits
        try:
            await credits.add(org, 1000)
            first = await credits.reserve(org, 600, account=True, budget_ids=[], ttl_seconds=60)
            with pytest.raises(CreditsRefused):  # 400 left, not 401
                await credits.reserve(org, 401, account=True, budget_ids=[], ttl_seconds=60)
            second = await credits.reserve(org, 400, account=True, budget_ids=[], ttl_seconds=60)
            account = await credits.account(org)
            assert account is not None
            assert (account.balance_nano, account.reserved_nano) == (1000, 1000)
            assert await credits.settle(first, 123)
            assert await credits.release(second)
            account = await credits.account(org)
            assert account is not None
            assert (account.balance_nano, account.reserved_nano) == (877, 0)
            assert await credits.holds(org) == []
            # A cost above the hold is charged in full (an estimate that fell short).
            third = await credits.reserve(org, 10, account=True, budget_ids=[], ttl_seconds=60)
            await credits.settle(third, 900)
            account = await credits.account(org)
            assert account is not None
            assert (account.balance_nano, account.available_nano) == (-23, -23)
            with pytest.raises(CreditsRefused):
                await credits.reserve(org, 1, account=True, budget_ids=[], ttl_seconds=60)
        finally:
            await store.close()

    asyncio.run(run())


def test_a_refusal_changes_nothing(database_url: str) -> None:
    """All or nothing: a budget that could cover the amount is not held when the account
    cannot; a budget that refuses is named."""

    async def run() -> None:
        store, org = await _store_with_org(database_url)
        credits = store.credits
        try:
            await credits.add(org, 50)
            roomy = await credits.set_budget(org, "org", org, "day", 1000)
            tight = await credits.set_budget(org, "user", "alice", "month", 99)
            with pytest.raises(CreditsRefused):
                await credits.reserve(org, 60, account=True, budget_ids=[roomy.id], ttl_seconds=9)
            with pytest.raises(BudgetRefused) as refused:
                await credits.reserve(
                    org, 100, account=False, budget_ids=[roomy.id, tight.id], ttl_seconds=9
                )
            assert refused.value.budget_id == tight.id
            assert [b.reserved_nano for b in await credits.budgets(org)] == [0, 0]
            account = await credits.account(org)
            assert account is not None and account.reserved_nano == 0
            assert await credits.holds(org) == []
        finally:
            await store.close()

    asyncio.run(run())


def test_the_sweep_releases_expired_holds_exactly_once(database_url: str) -> None:
    async def run() -> None:
        store, org = await _store_with_org(database_url)
        credits = store.credits
        try:
            await credits.add(org, 1000)
            budget = await credits.set_budget(org, "org", org, "day", 1000)
            crashed = await credits.reserve(
                org, 700, account=True, budget_ids=[budget.id], ttl_seconds=0.01
            )
            alive = await credits.reserve(org, 100, account=True, budget_ids=[], ttl_seconds=60)
            await asyncio.sleep(0.05)
            assert await credits.sweep() == 1
            assert await credits.sweep() == 0
            assert [h.id for h in await credits.holds(org)] == [alive.id]
            account = await credits.account(org)
            assert account is not None and account.reserved_nano == 100
            # The crashed request's process comes back after all: its cost is charged, its
            # hold (already released) is not given back twice.
            assert not await credits.settle(crashed, 40)
            account = await credits.account(org)
            assert account is not None
            assert (account.balance_nano, account.reserved_nano) == (960, 100)
            (state,) = await credits.budgets(org)
            assert (state.spent_nano, state.reserved_nano) == (40, 0)
        finally:
            await store.close()

    asyncio.run(run())


def test_concurrent_reservations_in_one_process_never_overspend(database_url: str) -> None:
    async def run() -> None:
        store, org = await _store_with_org(database_url)
        credits = store.credits
        try:
            await credits.add(org, 1050)

            async def one() -> bool:
                try:
                    await credits.reserve(org, 100, account=True, budget_ids=[], ttl_seconds=60)
                except CreditsRefused:
                    return False
                return True

            results = await asyncio.gather(*(one() for _ in range(40)))
            assert sum(results) == 10
            account = await credits.account(org)
            assert account is not None
            assert (account.reserved_nano, account.available_nano) == (1000, 50)
        finally:
            await store.close()

    asyncio.run(run())


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def managed() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=MANAGED) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def own() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=OWN) as emulator:
        yield emulator


def _settings(
    data_dir: Path, managed: OpenAIEmulator, own: OpenAIEmulator, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "provider_api_keys": {"openai": MANAGED},
        "provider_base_urls": {"openai": managed.base_url, "groq": own.base_url},
        "credits_cache_ttl_seconds": 0,
        "credit_sweep_interval_seconds": 0.1,
    }
    values.update(overrides)
    return make_settings(data_dir, **values)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, managed: OpenAIEmulator, own: OpenAIEmulator
) -> Iterator[GatewayServer]:
    with GatewayServer(_settings(tmp_path_factory.mktemp("gw"), managed, own)) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("managed", "own"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
    if "server" in request.fixturenames:
        request.getfixturevalue("server").runtime.router.health.reset()


@dataclass
class Org:
    server: GatewayServer
    id: str
    key: str

    def sdk(self, **headers: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.server.url + "/v1", api_key=self.key, max_retries=0,
            default_headers=headers or None,
        )  # fmt: skip

    def add(self, usd: str) -> None:
        self.server.call(self.server.runtime.store.credits.add(self.id, usd_to_nano(usd)))

    def account(self) -> tuple[int, int]:
        """(balance, reserved) once no hold is open: a hold is settled right after the
        answer's last byte, so the client may have its answer a moment before."""
        deadline = time.monotonic() + 5
        while self.holds() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.peek()

    def peek(self) -> tuple[int, int]:
        state = self.server.call(self.server.runtime.store.credits.account(self.id))
        assert state is not None
        return state.balance_nano, state.reserved_nano

    def holds(self) -> list[Any]:
        return self.server.call(self.server.runtime.store.credits.holds(self.id))

    def byok_groq(self) -> None:
        store = self.server.runtime.store
        self.server.call(
            store.provider_keys.create(
                self.id, provider="groq", name="own groq", api_key=OWN,
                deployment=Deployment(), deployment_id="own-groq",
            )
        )  # fmt: skip
        self.server.runtime.provider_keys.invalidate(self.id)


def _org(server: GatewayServer) -> Org:
    key, record = server.call(server.runtime.store.create_key(f"org-{uuid.uuid4().hex[:8]}"))
    return Org(server, record.org_id, key)


def _cost(server: GatewayServer, provider: str, model: str, usage: Any) -> int:
    registry = server.runtime.registry
    assert registry is not None
    used = Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
    result = registry.cost(provider, model, used)
    assert result.known and result.nano_usd > 0
    return result.nano_usd


def _hold(server: GatewayServer, body: bytes, max_tokens: int) -> int:
    """The worst case of a gpt-4o-mini request, computed here from the documented rule:
    ceil(bytes / 2) prompt tokens at the input price, ``max_tokens`` at the output price."""
    registry = server.runtime.registry
    assert registry is not None
    price = registry.lookup("openai", "gpt-4o-mini")
    assert price is not None and price.cache_write is None and price.reasoning is None
    prompt = math.ceil(len(body) / 2)
    return math.ceil((prompt * price.input + max_tokens * price.output) * 1000)


def test_an_org_without_an_account_is_unmetered(
    server: GatewayServer, managed: OpenAIEmulator
) -> None:
    org = _org(server)
    with org.sdk() as sdk:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(managed.requests) == 1  # served on the managed key
    credits = server.runtime.store.credits
    assert server.call(credits.account(org.id)) is None
    assert org.holds() == []

    async def session() -> Any:
        from gateway.context import RequestContext, parse_options
        from gateway.store import KeyIdentity

        ctx = RequestContext(parse_options({}))
        ctx.identity = KeyIdentity("k", org.id, "n")
        return await server.runtime.meter.session(ctx), ctx.tap

    assert server.call(session()) == (None, None)  # no tap: the answer is not recorded


def test_a_credits_attempt_holds_the_worst_case_then_settles_to_the_real_cost(
    server: GatewayServer, managed: OpenAIEmulator
) -> None:
    org = _org(server)
    org.add("1")
    managed.inject(Fault(delay=1.0))
    seen: list[tuple[int, int]] = []
    result: list[Any] = []

    def call() -> None:
        with org.sdk() as sdk:
            result.append(
                sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
            )

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        balance, reserved = org.peek()
        if reserved:
            seen.append((balance, reserved))
        time.sleep(0.02)
    thread.join(10)
    (completion,) = result
    sent = managed.requests[-1].body
    assert seen == [(USD, _hold(server, sent, 20))]
    cost = _cost(server, "openai", "gpt-4o-mini", completion.usage)
    assert org.account() == (USD - cost, 0)
    assert org.holds() == []


def test_a_stream_settles_from_its_usage_with_logging_off(
    server: GatewayServer, managed: OpenAIEmulator
) -> None:
    assert server.runtime.writer is None  # no request log, no capture
    org = _org(server)
    org.add("1")
    with org.sdk() as sdk:
        chunks = list(
            sdk.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True,
                stream_options={"include_usage": True},
            )
        )  # fmt: skip
        usage = chunks[-1].usage
        assert usage is not None
        cost = _cost(server, "openai", "gpt-4o-mini", usage)
        assert org.account() == (USD - cost, 0)
        # Without include_usage the gateway asks for the usage chunk itself (and strips it).
        plain = list(
            sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        )
    assert all(chunk.usage is None for chunk in plain)
    sent = orjson.loads(managed.requests[-1].body)
    assert sent["stream_options"] == {"include_usage": True}
    assert org.account() == (USD - 2 * cost, 0)


def test_insufficient_credits_fail_over_to_the_orgs_own_key(
    server: GatewayServer, managed: OpenAIEmulator, own: OpenAIEmulator
) -> None:
    org = _org(server)
    org.add("0")  # an account, empty
    org.byok_groq()
    with org.sdk() as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model=CHAIN, messages=MESSAGES)
    assert raw.parse().choices[0].message.content
    assert raw.headers["helicone-fallback-index"] == "1"
    assert managed.requests == []
    assert own.requests[-1].headers["authorization"] == f"Bearer {OWN}"
    assert org.account() == (0, 0)
    assert org.holds() == []


def test_insufficient_credits_alone_is_a_429(
    server: GatewayServer, managed: OpenAIEmulator
) -> None:
    org = _org(server)
    org.add("0.000001")  # a thousand nano-USD: less than any worst case
    with org.sdk() as sdk, pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    body = caught.value.body
    assert isinstance(body, dict)
    assert (body["message"], body["code"]) == ("Insufficient credits", "insufficient_credits")
    assert managed.requests == []
    assert org.account() == (1000, 0)


def test_a_failed_attempt_releases_its_hold(
    server: GatewayServer, managed: OpenAIEmulator, own: OpenAIEmulator
) -> None:
    org = _org(server)
    org.add("1")
    org.byok_groq()
    managed.inject(Fault(status=503))
    with org.sdk() as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model=CHAIN, messages=MESSAGES)
    assert raw.headers["helicone-fallback-index"] == "1"
    assert len(managed.requests) == 1 and len(own.requests) == 1
    assert org.account() == (USD, 0)  # the BYOK attempt is not charged to the account


def test_a_metered_org_uses_credits_only_for_priced_models(
    server: GatewayServer, managed: OpenAIEmulator
) -> None:
    unmetered, metered = _org(server), _org(server)
    metered.add("1")
    with unmetered.sdk() as sdk:  # the operator pays, as before: any model
        sdk.chat.completions.create(model="my-own-model/openai", messages=MESSAGES)
    with metered.sdk() as sdk, pytest.raises(openai.BadRequestError, match="No available"):
        sdk.chat.completions.create(model="my-own-model/openai", messages=MESSAGES)
    assert len(managed.requests) == 1


def test_a_clients_own_key_is_never_charged(
    server: GatewayServer, managed: OpenAIEmulator
) -> None:
    org = _org(server)
    org.add("0")
    with openai.OpenAI(
        base_url=server.url + "/v1", api_key=MANAGED, max_retries=0,
        default_headers={"helicone-auth": f"Bearer {org.key}"},
    ) as sdk:  # fmt: skip
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert org.account() == (0, 0)


def test_expired_holds_are_swept_while_running(server: GatewayServer) -> None:
    """A hold whose process died (never settled) is given back once it expires."""
    org = _org(server)
    org.add("1")
    credits = server.runtime.store.credits
    server.call(credits.reserve(org.id, 5000, account=True, budget_ids=[], ttl_seconds=0.2))
    assert org.peek() == (USD, 5000)
    assert org.account() == (USD, 0)  # waits for the sweep
    assert org.holds() == []


def test_expired_holds_are_released_at_startup(
    tmp_path: Path, managed: OpenAIEmulator, own: OpenAIEmulator
) -> None:
    settings = _settings(tmp_path, managed, own, credit_sweep_interval_seconds=3600)

    async def crash() -> str:
        store = ControlStore.from_settings(settings)
        try:
            await store.migrate()
            org = await store.ensure_org("crashed")
            await store.credits.add(org, USD)
            await store.credits.reserve(org, 7000, account=True, budget_ids=[], ttl_seconds=0.01)
            return org
        finally:
            await store.close()

    org_id = asyncio.run(crash())
    time.sleep(0.05)
    with GatewayServer(settings) as gateway:
        state = gateway.call(gateway.runtime.store.credits.account(org_id))
    assert state is not None and (state.balance_nano, state.reserved_nano) == (USD, 0)


# --- 50 concurrent requests, two gateways, one database ------------------------------------

AFFORDABLE = 7
CONCURRENT = 50


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_credits_never_go_below_zero_across_two_gateways(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    managed: OpenAIEmulator,
    own: OpenAIEmulator,
) -> None:
    overrides: dict[str, Any] = {}
    if backend == "postgres":
        url: str = request.getfixturevalue("postgres_database_url")
        asyncio.run(_wipe_postgres(url))
        overrides = {"database_url": url, "encryption_key": generate_key()}
    settings = _settings(tmp_path, managed, own, **overrides)
    body = orjson.dumps({"model": CHAIN, "messages": MESSAGES, "max_tokens": 16})
    # What the credits attempt sends upstream (the model id rewritten in place): its size
    # makes the hold.
    upstream = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 16})
    with GatewayServer(settings) as first, GatewayServer(settings) as second:
        org = _org(first)
        org.byok_groq()
        second.runtime.provider_keys.invalidate(org.id)
        hold = _hold(first, upstream, 16)
        balance = AFFORDABLE * hold + hold // 2
        first.call(first.runtime.store.credits.add(org.id, balance))
        # Every answer takes a while, so all 50 reserve before any settles: what the credits
        # can serve is decided by the reservations alone.
        managed.inject(Fault(delay=4.0, times=CONCURRENT))
        lowest: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                state = first.call(first.runtime.store.credits.account(org.id))
                assert state is not None
                lowest.append(state.available_nano)
                time.sleep(0.02)

        def send(index: int) -> tuple[int, str | None]:
            gateway = (first, second)[index % 2]
            response = httpx.post(
                gateway.url + "/v1/chat/completions",
                content=body,
                headers={"authorization": f"Bearer {org.key}", "content-type": "application/json"},
                timeout=60,
            )
            return response.status_code, response.headers.get("helicone-fallback-index")

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(CONCURRENT) as pool:
                results = list(pool.map(send, range(CONCURRENT)))
        finally:
            done.set()
            watcher.join()
        org.account()  # waits until the last holds are settled (just after the last answers)
        state = first.call(first.runtime.store.credits.account(org.id))
    assert all(status == 200 for status, _ in results), results
    served_on_credits = sum(index == "0" for _, index in results)
    assert served_on_credits == AFFORDABLE
    assert sum(index == "1" for _, index in results) == CONCURRENT - AFFORDABLE
    assert len(managed.requests) == AFFORDABLE
    assert {r.body for r in managed.requests} == {upstream}
    assert min(lowest) >= 0
    assert state is not None and state.reserved_nano == 0
    assert 0 <= state.balance_nano < balance
