"""Credit accounts, budgets and reservations in the control-plane store.

Every amount is an integer of nano-USD (USD x 1e9), as the request log's cost column.

**Reservations are single conditional statements.** A request attempt reserves its worst-case
cost with one ``UPDATE … SET reserved = reserved + :amount WHERE <what is left> >= :amount``
per target (each budget that applies, then the credit account), all in one transaction; a
statement that matches no row means that target cannot cover the amount, and the transaction
is rolled back whole. The check and the increment are one statement, so no interleaving of
requests or gateway processes can overspend: PostgreSQL re-evaluates the ``WHERE`` of an
``UPDATE`` that waited for a concurrent writer's row lock against the row that writer
committed (READ COMMITTED), and SQLite runs one writer at a time. Targets are always touched
in the same order (budgets by id, then the account), so two transactions cannot deadlock.

**Holds.** A reservation is one ``credit_holds`` row (amount, targets, expiry). Settling or
releasing deletes it and, only if the delete removed the row, gives the amount back to its
targets — in the same transaction. The sweep (:meth:`CreditStore.sweep`) releases expired
holds the same way; so a hold is given back exactly once whichever of settle, release and
sweep gets there first, and a settle that comes after the sweep still charges the cost.

**Periods** are UTC calendar days and months. A budget row keeps the spend of the period
starting at ``period_start``; a statement that finds the row in an earlier period starts the
current one from zero spent (``reserved`` carries over: requests in flight still hold). A cost
is counted in the period it is settled in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast, get_args

from sqlalchemy import ColumnElement, Row, case, delete, exists, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store._schema import (
    BudgetRow,
    CreditAccount,
    CreditHold,
    Organization,
    UTCDateTime,
    utc_now,
)

Period = Literal["day", "month"]
Scope = Literal["org", "key", "user"]
PERIODS: tuple[Period, ...] = get_args(Period)
SCOPES: tuple[Scope, ...] = get_args(Scope)
_UPSERT_ATTEMPTS = 3
_SWEEP_BATCH = 500


def period_start(period: Period, now: datetime) -> datetime:
    """The start of the UTC calendar ``period`` that contains ``now``."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


class CreditsRefused(Exception):
    """The organisation's credit account cannot cover the amount."""


class BudgetRefused(Exception):
    """A budget cannot cover the amount; ``budget_id`` says which (the first that refused)."""

    def __init__(self, budget_id: str) -> None:
        super().__init__(budget_id)
        self.budget_id = budget_id


class UnknownBudget(Exception):
    """No budget of the organisation has that id."""


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """What the meter needs of a budget to decide whether it applies to a request."""

    id: str
    scope: Scope
    subject: str
    """The organisation id (``org``), the gateway key id (``key``) or the user id (``user``)."""
    period: Period
    limit_nano: int


@dataclass(frozen=True, slots=True)
class MeterPolicy:
    """What is metered for one organisation: its credit account (if any) and its budgets."""

    account: bool
    budgets: tuple[BudgetRule, ...] = ()


UNMETERED = MeterPolicy(account=False)


@dataclass(frozen=True, slots=True)
class AccountState:
    org_id: str
    org_name: str
    balance_nano: int
    reserved_nano: int
    created_at: datetime
    updated_at: datetime

    @property
    def available_nano(self) -> int:
        """What new reservations may take."""
        return self.balance_nano - self.reserved_nano


@dataclass(frozen=True, slots=True)
class BudgetState:
    id: str
    org_id: str
    scope: Scope
    subject: str
    period: Period
    limit_nano: int
    spent_nano: int
    """Spent in the current period (0 when the stored period is over)."""
    reserved_nano: int
    period_start: datetime
    """The current period's start."""
    created_at: datetime
    updated_at: datetime

    @property
    def rule(self) -> BudgetRule:
        return BudgetRule(self.id, self.scope, self.subject, self.period, self.limit_nano)


@dataclass(frozen=True, slots=True)
class HoldRecord:
    """An open reservation: ``amount_nano`` on the account (``account``) and on each budget."""

    id: str
    org_id: str
    account: bool
    budget_ids: tuple[str, ...]
    amount_nano: int
    expires_at: datetime


def _current_start(now: datetime) -> ColumnElement[Any]:
    """The start of the row's own current period, as a SQL expression."""
    return case(
        (BudgetRow.period == "day", literal(period_start("day", now), UTCDateTime())),
        else_=literal(period_start("month", now), UTCDateTime()),
    )


def _rolled(now: datetime) -> ColumnElement[bool]:
    return BudgetRow.period_start < _current_start(now)


def _spent_now(now: datetime) -> ColumnElement[Any]:
    """The row's spend in the current period (0 once its stored period is over)."""
    return case((_rolled(now), 0), else_=BudgetRow.spent_nano)


def _period_start_now(now: datetime) -> ColumnElement[Any]:
    """The row's ``period_start`` after a statement at ``now`` (never moved backwards, so a
    process whose clock is a little behind cannot reopen a finished period)."""
    return case((_rolled(now), _current_start(now)), else_=BudgetRow.period_start)


def _budget_state(row: Row[Any], now: datetime) -> BudgetState:
    """A ``budgets`` row (all columns) as its state now."""
    current = period_start(row.period, now)
    rolled = row.period_start < current
    return BudgetState(
        id=row.id,
        org_id=row.org_id,
        scope=row.scope,
        subject=row.subject,
        period=row.period,
        limit_nano=row.limit_nano,
        spent_nano=0 if rolled else row.spent_nano,
        reserved_nano=row.reserved_nano,
        period_start=current if rolled else row.period_start,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class CreditStore:
    """Accounts, budgets and holds; reach it as ``ControlStore.credits``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # -- what is metered --------------------------------------------------------------

    async def policy(self, org_id: str) -> MeterPolicy:
        """Whether ``org_id`` has a credit account, and its budgets (two indexed reads)."""
        async with self._engine.connect() as connection:
            account = await connection.scalar(
                select(exists().where(CreditAccount.org_id == org_id))
            )
            rows = (
                await connection.execute(
                    select(
                        BudgetRow.id,
                        BudgetRow.scope,
                        BudgetRow.subject,
                        BudgetRow.period,
                        BudgetRow.limit_nano,
                    )
                    .where(BudgetRow.org_id == org_id)
                    .order_by(BudgetRow.id)
                )
            ).all()
        if not account and not rows:
            return UNMETERED
        budgets = tuple(
            BudgetRule(r[0], cast(Scope, r[1]), r[2], cast(Period, r[3]), r[4]) for r in rows
        )
        return MeterPolicy(account=bool(account), budgets=budgets)

    # -- accounts ---------------------------------------------------------------------

    async def add(self, org_id: str, amount_nano: int, now: datetime | None = None) -> AccountState:
        """Add ``amount_nano`` (negative: take away) to the org's balance, opening its
        account if it has none: from then on its credits attempts are metered."""
        now = now or utc_now()
        for attempt in range(_UPSERT_ATTEMPTS):
            try:
                async with self._engine.begin() as connection:
                    result = await connection.execute(
                        update(CreditAccount)
                        .where(CreditAccount.org_id == org_id)
                        .values(
                            balance_nano=CreditAccount.balance_nano + amount_nano, updated_at=now
                        )
                    )
                    if result.rowcount == 0:
                        await connection.execute(
                            insert(CreditAccount).values(
                                org_id=org_id,
                                balance_nano=amount_nano,
                                reserved_nano=0,
                                created_at=now,
                                updated_at=now,
                            )
                        )
                break
            except IntegrityError:
                # Another process opened the account between our update and insert.
                if attempt == _UPSERT_ATTEMPTS - 1:
                    raise
        state = await self.account(org_id)
        assert state is not None
        return state

    async def account(self, org_id: str) -> AccountState | None:
        accounts = await self._accounts(CreditAccount.org_id == org_id)
        return accounts[0] if accounts else None

    async def accounts(self) -> list[AccountState]:
        """Every account, by organisation name."""
        return await self._accounts(None)

    async def _accounts(self, where: ColumnElement[bool] | None) -> list[AccountState]:
        query = (
            select(
                CreditAccount.org_id,
                Organization.name,
                CreditAccount.balance_nano,
                CreditAccount.reserved_nano,
                CreditAccount.created_at,
                CreditAccount.updated_at,
            )
            .join(Organization, Organization.id == CreditAccount.org_id)
            .order_by(Organization.name)
        )
        if where is not None:
            query = query.where(where)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [AccountState(*row) for row in rows]

    # -- budgets ----------------------------------------------------------------------

    async def set_budget(
        self,
        org_id: str,
        scope: Scope,
        subject: str,
        period: Period,
        limit_nano: int,
        now: datetime | None = None,
    ) -> BudgetState:
        """Create or change the limit of the budget of (``scope``, ``subject``, ``period``);
        its spend so far in the current period is kept."""
        if scope not in SCOPES or period not in PERIODS:
            raise ValueError(f"scope must be one of {SCOPES} and period one of {PERIODS}")
        if limit_nano < 0:
            raise ValueError("a budget's limit cannot be negative")
        now = now or utc_now()
        match = (
            (BudgetRow.org_id == org_id)
            & (BudgetRow.scope == scope)
            & (BudgetRow.subject == subject)
            & (BudgetRow.period == period)
        )
        for attempt in range(_UPSERT_ATTEMPTS):
            try:
                async with self._engine.begin() as connection:
                    result = await connection.execute(
                        update(BudgetRow).where(match).values(limit_nano=limit_nano, updated_at=now)
                    )
                    if result.rowcount == 0:
                        await connection.execute(
                            insert(BudgetRow).values(
                                id=str(uuid.uuid4()),
                                org_id=org_id,
                                scope=scope,
                                subject=subject,
                                period=period,
                                limit_nano=limit_nano,
                                spent_nano=0,
                                reserved_nano=0,
                                period_start=period_start(period, now),
                                created_at=now,
                                updated_at=now,
                            )
                        )
                break
            except IntegrityError:
                if attempt == _UPSERT_ATTEMPTS - 1:
                    raise
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(BudgetRow).where(match))).one()
        return _budget_state(row, now)

    async def remove_budget(self, org_id: str, budget_id: str) -> None:
        """Delete a budget (its open holds are settled against nothing); raises
        :class:`UnknownBudget`."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(BudgetRow).where(BudgetRow.org_id == org_id, BudgetRow.id == budget_id)
            )
        if result.rowcount == 0:
            raise UnknownBudget(budget_id)

    async def budgets(
        self, org_id: str | None = None, now: datetime | None = None
    ) -> list[BudgetState]:
        """Budgets (of one organisation, or all), with the current period's spend."""
        now = now or utc_now()
        query = select(BudgetRow).order_by(
            BudgetRow.org_id, BudgetRow.scope, BudgetRow.subject, BudgetRow.period
        )
        if org_id is not None:
            query = query.where(BudgetRow.org_id == org_id)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_budget_state(row, now) for row in rows]

    # -- reservations -----------------------------------------------------------------

    async def reserve(
        self,
        org_id: str,
        amount_nano: int,
        *,
        account: bool,
        budget_ids: Sequence[str],
        ttl_seconds: float,
        now: datetime | None = None,
    ) -> HoldRecord:
        """Hold ``amount_nano`` on each budget of ``budget_ids`` and (``account``) on the org's
        credit account, all or nothing. Raises :class:`BudgetRefused` (the first budget, in
        id order, that cannot cover it; budgets are checked before the account) or
        :class:`CreditsRefused` (no account, or too little left on it)."""
        if amount_nano < 1:
            raise ValueError("a reservation holds at least 1 nano-USD")
        now = now or utc_now()
        budgets = tuple(sorted(set(budget_ids)))
        hold = HoldRecord(
            id=str(uuid.uuid4()),
            org_id=org_id,
            account=account,
            budget_ids=budgets,
            amount_nano=amount_nano,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
        async with self._engine.begin() as connection:
            for budget_id in budgets:
                if not await self._hold_budget(connection, budget_id, amount_nano, now):
                    raise BudgetRefused(budget_id)  # leaving the block rolls back
            if account and not await self._hold_account(connection, org_id, amount_nano, now):
                raise CreditsRefused(org_id)
            await connection.execute(
                insert(CreditHold).values(
                    id=hold.id,
                    org_id=org_id,
                    account=account,
                    budget_ids=" ".join(budgets),
                    amount_nano=amount_nano,
                    created_at=now,
                    expires_at=hold.expires_at,
                )
            )
        return hold

    @staticmethod
    async def _hold_budget(
        connection: AsyncConnection, budget_id: str, amount: int, now: datetime
    ) -> bool:
        spent = _spent_now(now)
        left = BudgetRow.limit_nano - spent - BudgetRow.reserved_nano
        result = await connection.execute(
            update(BudgetRow)
            .where(BudgetRow.id == budget_id, left >= amount)
            .values(
                spent_nano=spent,
                period_start=_period_start_now(now),
                reserved_nano=BudgetRow.reserved_nano + amount,
                updated_at=now,
            )
        )
        return bool(result.rowcount)

    @staticmethod
    async def _hold_account(
        connection: AsyncConnection, org_id: str, amount: int, now: datetime
    ) -> bool:
        left = CreditAccount.balance_nano - CreditAccount.reserved_nano
        result = await connection.execute(
            update(CreditAccount)
            .where(CreditAccount.org_id == org_id, left >= amount)
            .values(reserved_nano=CreditAccount.reserved_nano + amount, updated_at=now)
        )
        return bool(result.rowcount)

    async def settle(self, hold: HoldRecord, cost_nano: int, now: datetime | None = None) -> bool:
        """Close ``hold``: give its amount back (unless the sweep already did) and charge
        ``cost_nano`` to its targets, which may be more than was held (an estimate that fell
        short: the balance then goes below zero by the difference, and the account's next
        reservations are refused until it is topped up). Returns whether the hold was still
        open. A budget or account deleted meanwhile is simply not charged."""
        if cost_nano < 0:
            raise ValueError("a cost cannot be negative")
        now = now or utc_now()
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(CreditHold).where(CreditHold.id == hold.id))
            released = hold.amount_nano if result.rowcount else 0
            if released or cost_nano:
                await self._close(connection, hold, released, cost_nano, now)
        return bool(released)

    async def release(self, hold: HoldRecord) -> bool:
        """Close ``hold`` without a charge (the attempt failed); see :meth:`settle`."""
        return await self.settle(hold, 0)

    @staticmethod
    async def _close(
        connection: AsyncConnection, hold: HoldRecord, released: int, cost: int, now: datetime
    ) -> None:
        spent = _spent_now(now)
        for budget_id in hold.budget_ids:  # sorted when reserved: the same lock order
            await connection.execute(
                update(BudgetRow)
                .where(BudgetRow.id == budget_id)
                .values(
                    spent_nano=spent + cost,
                    period_start=_period_start_now(now),
                    reserved_nano=BudgetRow.reserved_nano - released,
                    updated_at=now,
                )
            )
        if hold.account:
            await connection.execute(
                update(CreditAccount)
                .where(CreditAccount.org_id == hold.org_id)
                .values(
                    balance_nano=CreditAccount.balance_nano - cost,
                    reserved_nano=CreditAccount.reserved_nano - released,
                    updated_at=now,
                )
            )

    async def holds(self, org_id: str | None = None) -> list[HoldRecord]:
        """Open holds (of one organisation, or all), oldest first."""
        query = select(CreditHold).order_by(CreditHold.created_at, CreditHold.id)
        if org_id is not None:
            query = query.where(CreditHold.org_id == org_id)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            HoldRecord(
                id=row.id,
                org_id=row.org_id,
                account=row.account,
                budget_ids=tuple(row.budget_ids.split()),
                amount_nano=row.amount_nano,
                expires_at=row.expires_at,
            )
            for row in rows
        ]

    async def sweep(self, now: datetime | None = None) -> int:
        """Release every hold whose expiry has passed (a process died between reserve and
        settle, or a request outlived the hold); returns how many this call released."""
        now = now or utc_now()
        released = 0
        while True:
            async with self._engine.connect() as connection:
                rows = (
                    await connection.execute(
                        select(CreditHold)
                        .where(CreditHold.expires_at <= now)
                        .order_by(CreditHold.expires_at)
                        .limit(_SWEEP_BATCH)
                    )
                ).all()
            for row in rows:
                hold = HoldRecord(
                    row.id,
                    row.org_id,
                    row.account,
                    tuple(row.budget_ids.split()),
                    row.amount_nano,
                    row.expires_at,
                )
                released += await self.settle(hold, 0, now)
            if len(rows) < _SWEEP_BATCH:
                return released
