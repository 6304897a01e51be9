"""Metering: credit accounts and budgets applied to requests (reserve before, settle after).

:mod:`gateway.metering.meter` has the per-process :class:`Meter` and the per-request
:class:`MeterSession`; :mod:`gateway.metering.estimate` the worst-case estimate and exact
USD amounts; the accounts, budgets and holds live in :class:`gateway.store.CreditStore`.
"""

from gateway.metering.estimate import AmountError, nano_to_usd, usd_to_nano
from gateway.metering.meter import (
    BUDGET_EXCEEDED,
    BudgetExceeded,
    Hold,
    InsufficientCredits,
    Meter,
    MeterSession,
)

__all__ = [
    "BUDGET_EXCEEDED",
    "AmountError",
    "BudgetExceeded",
    "Hold",
    "InsufficientCredits",
    "Meter",
    "MeterSession",
    "nano_to_usd",
    "usd_to_nano",
]
