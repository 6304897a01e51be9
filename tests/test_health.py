"""Per (provider, key) health (providers/health.py): threshold, cool-down window, half-open
retry, reset on success, ordering that never drops an attempt."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from providers.health import Health


@dataclass(frozen=True)
class Try:
    provider: str
    key_id: str


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_threshold_then_cooldown_window() -> None:
    clock = Clock()
    health = Health(threshold=3, cooldown=30, clock=clock)
    for _ in range(2):
        health.failure("openai", "k1")
    assert not health.cooled("openai", "k1")
    health.failure("openai", "k1")
    assert health.cooled("openai", "k1")
    assert not health.cooled("openai", "k2")  # per key, not per provider
    assert not health.cooled("openai", "credits")
    clock.now += 29.9
    assert health.cooled("openai", "k1")
    clock.now += 0.2
    assert not health.cooled("openai", "k1")


def test_half_open_after_window() -> None:
    clock = Clock()
    health = Health(threshold=3, cooldown=30, clock=clock)
    for _ in range(3):
        health.failure("groq", "credits")
    clock.now += 31
    assert not health.cooled("groq", "credits")
    health.failure("groq", "credits")  # one more failure: cooled again at once
    assert health.cooled("groq", "credits")
    clock.now += 31
    health.success("groq", "credits")  # one success: healthy, count reset
    assert health.failures("groq", "credits") == 0
    health.failure("groq", "credits")
    assert not health.cooled("groq", "credits")


def test_success_resets_consecutive_count() -> None:
    health = Health(threshold=2, clock=Clock())
    health.failure("openai", "k")
    health.success("openai", "k")
    health.failure("openai", "k")
    assert not health.cooled("openai", "k")
    assert health.failures("openai", "k") == 1


def test_order_moves_cooled_to_the_end_keeping_order() -> None:
    clock = Clock()
    health = Health(threshold=1, cooldown=5, clock=clock)
    attempts = [Try("a", "1"), Try("b", "1"), Try("c", "credits"), Try("d", "2")]
    assert health.order(attempts) == attempts
    health.failure("a", "1")
    health.failure("c", "credits")
    assert health.order(attempts) == [attempts[1], attempts[3], attempts[0], attempts[2]]
    # Every attempt cooled: all still there, in plan order.
    health.failure("b", "1")
    health.failure("d", "2")
    assert health.order(attempts) == attempts
    clock.now += 6
    assert health.order(attempts) == attempts


def test_instances_do_not_share_state() -> None:
    one, two = Health(threshold=1, clock=Clock()), Health(threshold=1, clock=Clock())
    one.failure("openai", "k")
    assert one.cooled("openai", "k") and not two.cooled("openai", "k")


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 30.0), (3, -1.0)])
def test_bad_settings(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError):
        Health(threshold=threshold, cooldown=cooldown)
