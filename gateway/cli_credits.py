"""``gateway credits``: credit accounts and budgets from the command line.

``add ORG AMOUNT_USD`` (opens the account; negative takes credits away), ``show ORG``,
``set-budget --org/--key/--user --period day|month --limit-usd X`` (or ``--remove``) and
``list``. ORG is an organisation's name or id. Amounts are USD decimal strings, converted
exactly to nano-USD. A running gateway sees a change within ``GATEWAY_CREDITS_CACHE_TTL_SECONDS``
(the admin API, ``/admin/credits``, applies at once in the process that serves it).
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import CommandFailed, _columns, _run_with_store, _timestamp
from gateway.metering import AmountError, nano_to_usd, usd_to_nano
from gateway.settings import Settings
from gateway.store import (
    PERIODS,
    AccountState,
    BudgetState,
    ControlStore,
    Period,
    Scope,
    UnknownBudget,
)


def _amount(text: str) -> int:
    try:
        return usd_to_nano(text)
    except AmountError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _org(store: ControlStore, name_or_id: str) -> tuple[str, str]:
    found = await store.find_org(name_or_id)
    if found is None:
        raise CommandFailed(
            f"unknown organisation {name_or_id!r} (create a key for it first: "
            f"gateway keys create --org {name_or_id})"
        )
    return found


def _account_line(account: AccountState) -> str:
    return (
        f"balance {nano_to_usd(account.balance_nano)} USD, reserved "
        f"{nano_to_usd(account.reserved_nano)}, available {nano_to_usd(account.available_nano)}"
    )


def _budget_rows(budgets: list[BudgetState]) -> list[tuple[str, ...]]:
    return [
        (
            b.id,
            b.scope,
            b.subject,
            b.period,
            nano_to_usd(b.limit_nano),
            nano_to_usd(b.spent_nano),
            nano_to_usd(b.reserved_nano),
            _timestamp(b.period_start),
        )
        for b in budgets
    ]


_PERIOD_WORDS = {"day": ("daily", "UTC day"), "month": ("monthly", "UTC calendar month")}
_BUDGET_HEADER = ("ID", "SCOPE", "SUBJECT", "PERIOD", "LIMIT", "SPENT", "RESERVED", "SINCE")


def _add(args: argparse.Namespace, settings: Settings) -> int:
    async def add(store: ControlStore) -> tuple[str, AccountState]:
        org_id, name = await _org(store, args.org)
        return name, await store.credits.add(org_id, args.amount)

    name, account = _run_with_store(settings, add)
    print(f"Added {nano_to_usd(args.amount)} USD to org '{name}': {_account_line(account)}.")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    async def show(store: ControlStore) -> tuple[str, AccountState | None, list[BudgetState]]:
        org_id, name = await _org(store, args.org)
        return name, await store.credits.account(org_id), await store.credits.budgets(org_id)

    name, account, budgets = _run_with_store(settings, show)
    if account is None:
        print(f"Org '{name}' has no credit account: its managed-key requests are not metered.")
    else:
        print(f"Org '{name}': {_account_line(account)}.")
    if budgets:
        print(_columns(_BUDGET_HEADER, _budget_rows(budgets)))
    else:
        print("No budgets.")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def fetch(store: ControlStore) -> tuple[list[AccountState], list[BudgetState]]:
        return await store.credits.accounts(), await store.credits.budgets()

    accounts, budgets = _run_with_store(settings, fetch)
    if not accounts and not budgets:
        print("No credit accounts or budgets: nothing is metered.")
        return 0
    counts: dict[str, int] = {}
    for budget in budgets:
        counts[budget.org_id] = counts.get(budget.org_id, 0) + 1
    rows = [
        (
            a.org_name,
            nano_to_usd(a.balance_nano),
            nano_to_usd(a.reserved_nano),
            nano_to_usd(a.available_nano),
            str(counts.get(a.org_id, 0)),
        )
        for a in accounts
    ]
    print(_columns(("ORG", "BALANCE", "RESERVED", "AVAILABLE", "BUDGETS"), rows))
    if budgets:
        print(_columns(("ORG ID", *_BUDGET_HEADER), [(b.org_id, *row) for b, row in zip(
            budgets, _budget_rows(budgets), strict=True)]))  # fmt: skip
    return 0


def _set_budget(args: argparse.Namespace, settings: Settings) -> int:
    if (args.limit_usd is None) == (not args.remove):
        raise CommandFailed("give either --limit-usd AMOUNT or --remove")
    if args.limit_usd is not None and args.limit_usd < 0:
        raise CommandFailed("--limit-usd cannot be negative")

    async def apply(store: ControlStore) -> tuple[str, Any]:
        scope: Scope
        if args.key is not None:
            key = await store.find_key(args.key)
            if args.org is not None and (await _org(store, args.org))[0] != key.org_id:
                raise CommandFailed(f"key {key.id} does not belong to org {args.org!r}")
            org_id, name, scope, subject = key.org_id, key.org_name, "key", key.id
            who = f"gateway key {key.id} ({key.prefix}) of org '{name}'"
        else:
            if args.org is None:
                raise CommandFailed("name the organisation with --org (and --user for a user)")
            org_id, name = await _org(store, args.org)
            if args.user is not None:
                scope, subject, who = "user", args.user, f"user '{args.user}' of org '{name}'"
            else:
                scope, subject, who = "org", org_id, f"org '{name}'"
        period: Period = args.period
        if args.remove:
            budgets = await store.credits.budgets(org_id)
            match = [
                b for b in budgets
                if (b.scope, b.subject, b.period) == (scope, subject, period)
            ]  # fmt: skip
            if not match:
                raise CommandFailed(f"no {_PERIOD_WORDS[period][0]} budget for {who}")
            try:
                await store.credits.remove_budget(org_id, match[0].id)
            except UnknownBudget as exc:  # removed meanwhile
                raise CommandFailed(f"no {_PERIOD_WORDS[period][0]} budget for {who}") from exc
            return who, None
        budget = await store.credits.set_budget(org_id, scope, subject, period, args.limit_usd)
        return who, budget

    who, budget = _run_with_store(settings, apply)
    adjective, unit = _PERIOD_WORDS[args.period]
    if budget is None:
        print(f"Removed the {adjective} budget of {who}.")
    else:
        print(
            f"The {adjective} budget of {who} is {nano_to_usd(budget.limit_nano)} USD per "
            f"{unit} (spent this period: {nano_to_usd(budget.spent_nano)}). "
            f"Budget id {budget.id}."
        )
    return 0


def add_credits_parser(commands: Any) -> None:
    """Add ``credits`` and its actions to the ``gateway`` command's subparsers."""
    credits = commands.add_parser("credits", help="credit accounts and budgets (metering)")
    actions = credits.add_subparsers(dest="credits_command", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add credits to an organisation (opens its account)")
    add.add_argument("org", metavar="ORG", help="organisation name or id")
    add.add_argument(
        "amount", metavar="AMOUNT_USD", type=_amount,
        help="USD, e.g. 25 or 12.50 (negative takes credits away)",
    )  # fmt: skip
    add.set_defaults(handler=_add)

    show = actions.add_parser("show", help="an organisation's balance and budgets")
    show.add_argument("org", metavar="ORG", help="organisation name or id")
    show.set_defaults(handler=_show)

    listing = actions.add_parser("list", help="every credit account and budget")
    listing.set_defaults(handler=_list)

    budget = actions.add_parser(
        "set-budget", help="set (or --remove) a spend limit per UTC day or month"
    )
    budget.add_argument("--org", help="the organisation (name or id); alone: its own budget")
    who = budget.add_mutually_exclusive_group()
    who.add_argument("--key", help="a gateway key's budget (key id or prefix)")
    who.add_argument("--user", help="a user's budget (the Helicone-User-Id value); needs --org")
    budget.add_argument("--period", required=True, choices=PERIODS)
    budget.add_argument("--limit-usd", type=_amount, help="the limit in USD per period")
    budget.add_argument("--remove", action="store_true", help="remove the budget")
    budget.set_defaults(handler=_set_budget)
