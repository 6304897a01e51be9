"""The operator's admin API for credit accounts and budgets: ``/admin/credits``.

Authenticated by a gateway key that carries the ``gateway:admin`` scope explicitly
(:func:`gateway.scopes.is_admin`; a full-access key is not enough: it belongs to one
organisation, and these routes reach every organisation). Errors are OpenAI-shaped, like the
data plane's: 401 without a valid key, 403 without the scope, 404 for an unknown organisation
or budget, 400 for bad input naming the field.

Routes (``{org}`` is an organisation's name, or its id)::

    GET    /admin/credits                         every account  {"data": [account]}
    GET    /admin/credits/{org}                   {"org", "account" (null: unmetered), "budgets"}
    POST   /admin/credits/{org}/add               {"amount_usd": "10.50"} → as GET {org}
    GET    /admin/credits/{org}/budgets           {"data": [budget]}
    PUT    /admin/credits/{org}/budgets           {"scope": "org"|"key"|"user", "subject",
                                                   "period": "day"|"month", "limit_usd"}
                                                   → budget (created or its limit changed)
    DELETE /admin/credits/{org}/budgets/{id}      204

Amounts are USD decimal strings, converted exactly to nano-USD (more than 9 decimals is a
400); answers carry both (``balance_usd`` and ``balance_nano``…). ``add`` opens the account
when the organisation has none (from then on its credits attempts are metered); a negative
amount takes credits away. A budget's ``subject`` is the user id (``user``), the gateway key's
id or display prefix (``key``, a key of that organisation), and is ignored for ``org``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from gateway.errors import GatewayError, error_body
from gateway.metering import AmountError, nano_to_usd, usd_to_nano
from gateway.scopes import ADMIN, is_admin
from gateway.store import (
    PERIODS,
    SCOPES,
    AccountState,
    AmbiguousKey,
    BudgetState,
    ControlStore,
    KeyIdentity,
    KeyNotFound,
    Period,
    Scope,
    UnknownBudget,
)

logger = logging.getLogger("gateway.api.credits")

PREFIX = "/admin/credits"


@dataclass(frozen=True, slots=True)
class CreditsApiDeps:
    authenticate: Callable[[dict[str, str]], Awaitable[KeyIdentity]]
    store: ControlStore
    on_change: Callable[[str], None]
    """Called with an organisation id after its account or budgets changed (the meter's
    cache of this process forgets it)."""


class _Refused(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.response = Response(
            error_body(status, message, param=param), status_code=status,
            media_type="application/json",
        )  # fmt: skip


def account_json(account: AccountState) -> dict[str, Any]:
    return {
        "org_id": account.org_id,
        "org_name": account.org_name,
        "balance_usd": nano_to_usd(account.balance_nano),
        "balance_nano": account.balance_nano,
        "reserved_usd": nano_to_usd(account.reserved_nano),
        "reserved_nano": account.reserved_nano,
        "available_usd": nano_to_usd(account.available_nano),
        "available_nano": account.available_nano,
        "created_at": _time(account.created_at),
        "updated_at": _time(account.updated_at),
    }


def budget_json(budget: BudgetState) -> dict[str, Any]:
    return {
        "id": budget.id,
        "org_id": budget.org_id,
        "scope": budget.scope,
        "subject": budget.subject,
        "period": budget.period,
        "limit_usd": nano_to_usd(budget.limit_nano),
        "limit_nano": budget.limit_nano,
        "spent_usd": nano_to_usd(budget.spent_nano),
        "spent_nano": budget.spent_nano,
        "reserved_nano": budget.reserved_nano,
        "period_start": _time(budget.period_start),
        "updated_at": _time(budget.updated_at),
    }


def _time(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def credits_router(deps: CreditsApiDeps) -> APIRouter:
    router = APIRouter(tags=["Admin: credits and budgets"])
    store = deps.store
    credits = store.credits

    async def admin(request: Request) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            identity = await deps.authenticate(headers)
        except GatewayError as exc:
            raise _Refused(exc.status, exc.message) from None
        if not is_admin(identity.scopes):
            raise _Refused(
                403,
                f"This gateway key lacks the '{ADMIN}' scope needed for the credits admin API "
                f"(create one with 'gateway keys create --scope {ADMIN}').",
            )

    async def org_of(name_or_id: str) -> tuple[str, str]:
        found = await store.find_org(name_or_id)
        if found is None:
            raise _Refused(404, f"Unknown organisation {name_or_id!r}.")
        return found

    async def body(request: Request) -> dict[str, Any]:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise _Refused(400, "The request body must be a JSON object.") from None
        if not isinstance(payload, dict):
            raise _Refused(400, "The request body must be a JSON object.")
        return payload

    def amount(payload: dict[str, Any], field: str) -> int:
        value = payload.get(field)
        if not isinstance(value, str):
            raise _Refused(400, f"'{field}' must be a USD decimal string, e.g. \"10.50\".", field)
        try:
            return usd_to_nano(value)
        except AmountError as exc:
            raise _Refused(400, f"'{field}': {exc}.", field) from None

    async def org_view(org_id: str, org_name: str) -> dict[str, Any]:
        account = await credits.account(org_id)
        return {
            "org": {"id": org_id, "name": org_name},
            "account": account_json(account) if account is not None else None,
            "budgets": [budget_json(b) for b in await credits.budgets(org_id)],
        }

    async def answer(work: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await work()
        except _Refused as exc:
            return exc.response
        except Exception:
            logger.exception("credits admin API failed")
            return Response(
                error_body(500, "Internal gateway error."), status_code=500,
                media_type="application/json",
            )  # fmt: skip

    async def budget_subject(org_id: str, scope: Scope, subject: object) -> str:
        if scope == "org":
            return org_id
        if not isinstance(subject, str) or not subject.strip():
            what = "the user id" if scope == "user" else "the gateway key's id or prefix"
            raise _Refused(400, f"'subject' must be {what}.", "subject")
        if scope == "user":
            if len(subject) > 255:
                raise _Refused(400, "'subject' is longer than 255 characters.", "subject")
            return subject
        try:
            key = await store.find_key(subject)
        except (KeyNotFound, AmbiguousKey) as exc:
            raise _Refused(400, f"'subject': {exc.args[0]}.", "subject") from None
        if key.org_id != org_id:
            raise _Refused(400, "'subject': that key belongs to another organisation.", "subject")
        return key.id

    @router.get(PREFIX, operation_id="ListCreditAccounts")
    async def list_accounts(request: Request) -> Response:
        """Every organisation's credit account."""

        async def work() -> Response:
            await admin(request)
            return _json({"data": [account_json(a) for a in await credits.accounts()]})

        return await answer(work)

    @router.get(PREFIX + "/{org}", operation_id="GetCreditAccount")
    async def show(request: Request, org: str) -> Response:
        """One organisation's account (null: unmetered) and budgets."""

        async def work() -> Response:
            await admin(request)
            return _json(await org_view(*await org_of(org)))

        return await answer(work)

    @router.post(PREFIX + "/{org}/add", operation_id="AddCredits")
    async def add(request: Request, org: str) -> Response:
        """Add ``amount_usd`` to the balance (opening the account)."""

        async def work() -> Response:
            await admin(request)
            org_id, org_name = await org_of(org)
            nano = amount(await body(request), "amount_usd")
            await credits.add(org_id, nano)
            deps.on_change(org_id)
            return _json(await org_view(org_id, org_name))

        return await answer(work)

    @router.get(PREFIX + "/{org}/budgets", operation_id="ListBudgets")
    async def list_budgets(request: Request, org: str) -> Response:
        async def work() -> Response:
            await admin(request)
            org_id, _ = await org_of(org)
            return _json({"data": [budget_json(b) for b in await credits.budgets(org_id)]})

        return await answer(work)

    @router.put(PREFIX + "/{org}/budgets", operation_id="SetBudget")
    async def set_budget(request: Request, org: str) -> Response:
        """Create a budget, or change its limit (keyed by scope, subject and period)."""

        async def work() -> Response:
            await admin(request)
            org_id, _ = await org_of(org)
            payload = await body(request)
            scope, period = payload.get("scope"), payload.get("period")
            if scope not in SCOPES:
                raise _Refused(400, f"'scope' must be one of {', '.join(SCOPES)}.", "scope")
            if period not in PERIODS:
                raise _Refused(400, f"'period' must be one of {', '.join(PERIODS)}.", "period")
            limit = amount(payload, "limit_usd")
            if limit < 0:
                raise _Refused(400, "'limit_usd' cannot be negative.", "limit_usd")
            subject = await budget_subject(org_id, cast(Scope, scope), payload.get("subject"))
            budget = await credits.set_budget(
                org_id, cast(Scope, scope), subject, cast(Period, period), limit
            )
            deps.on_change(org_id)
            return _json(budget_json(budget))

        return await answer(work)

    @router.delete(PREFIX + "/{org}/budgets/{budget_id}", operation_id="DeleteBudget")
    async def delete_budget(request: Request, org: str, budget_id: str) -> Response:
        async def work() -> Response:
            await admin(request)
            org_id, _ = await org_of(org)
            try:
                await credits.remove_budget(org_id, budget_id)
            except UnknownBudget:
                raise _Refused(404, f"Unknown budget {budget_id!r}.") from None
            deps.on_change(org_id)
            return Response(status_code=204)

        return await answer(work)

    return router


def include_credits_api(app: FastAPI, deps: CreditsApiDeps) -> None:
    app.include_router(credits_router(deps))
