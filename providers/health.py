"""Per (provider, key) health: a key that keeps failing is tried last for a short while.

Issue 11 §4: "a provider that keeps failing is cooled down for a short window and then
retried (health per provider and key)". The unit is the pair, not the provider: one org's
revoked OpenAI key must not push every other org's OpenAI attempts (or the managed key) to the
back. Managed (credits) keys share one id per provider (:data:`CREDITS_KEY_ID`).

Rules:

* ``threshold`` consecutive failures (default 3) cool the pair down for ``cooldown`` seconds
  (default 30). A success resets it.
* A cooled-down attempt is not dropped: :meth:`Health.order` moves it to the end of the plan,
  keeping the relative order of both parts, so a request whose every attempt is cooled still
  runs (the outage may be over) and a healthy alternative is tried first.
* After the window the pair is tried in its planned place again, half-open: its failure
  count is kept, so one more failure cools it down again at once, while one success clears it.

What counts as a failure is the caller's choice; the intent is a failure of the provider or
the key (an attempt that triggered failover), not a gateway-generated refusal such as
"Insufficient credits" and not the client's own bad request.

No module state: one :class:`Health` is owned by the runtime (per process) and passed to the
planner. The clock is injectable for tests. Entries exist only for pairs that failed, so
memory is bounded by the keys in use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

__all__ = ["CREDITS_KEY_ID", "Health", "HealthKeyed"]

CREDITS_KEY_ID = "credits"
"""The key id of a provider's managed key (one per provider and process)."""


class HealthKeyed(Protocol):
    """Anything :meth:`Health.order` can sort: an attempt names its provider and key."""

    @property
    def provider(self) -> str: ...

    @property
    def key_id(self) -> str: ...


T = TypeVar("T", bound=HealthKeyed)


class Health:
    """Consecutive failures and cool-down deadlines per ``(provider, key_id)``."""

    __slots__ = ("_clock", "_state", "cooldown", "threshold")

    def __init__(
        self,
        *,
        threshold: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if cooldown < 0:
            raise ValueError("cooldown must not be negative")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._state: dict[tuple[str, str], list[float]] = {}
        """(provider, key_id) → [consecutive failures, cooled until (clock time)]."""

    @property
    def quiet(self) -> bool:
        """No failure on record: every plan is in its plain order."""
        return not self._state

    def reset(self) -> None:
        """Forget every record (all providers healthy again)."""
        self._state.clear()

    def failure(self, provider: str, key_id: str) -> None:
        """Record a failed attempt; the threshold-th consecutive one starts a cool-down."""
        state = self._state.setdefault((provider, key_id), [0.0, 0.0])
        state[0] += 1
        if state[0] >= self.threshold:
            state[1] = self._clock() + self.cooldown

    def success(self, provider: str, key_id: str) -> None:
        """Record a successful attempt: the pair is healthy again."""
        if self._state:
            self._state.pop((provider, key_id), None)

    def failures(self, provider: str, key_id: str) -> int:
        """Consecutive failures recorded for the pair."""
        state = self._state.get((provider, key_id))
        return 0 if state is None else int(state[0])

    def cooled(self, provider: str, key_id: str) -> bool:
        """Whether the pair is in its cool-down window now."""
        state = self._state.get((provider, key_id))
        return state is not None and state[1] > self._clock()

    def order(self, attempts: Sequence[T]) -> list[T]:
        """``attempts`` with the cooled-down ones moved to the end (both parts keep their
        order). Cheap when nothing failed recently: no clock read, one list copy."""
        if not self._state:
            return list(attempts)
        now = self._clock()
        ready: list[T] = []
        cooled: list[T] = []
        state = self._state
        for attempt in attempts:
            entry = state.get((attempt.provider, attempt.key_id))
            (cooled if entry is not None and entry[1] > now else ready).append(attempt)
        ready.extend(cooled)
        return ready
