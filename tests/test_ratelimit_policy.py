"""``Helicone-RateLimit-Policy``: the grammar, every boundary of the parser's rules, and the
canonical form the response states."""

from __future__ import annotations

import pytest

from ratelimit import MAX_QUOTA, PolicyError, RatePolicy, parse_policy


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # The custom-rate-limits page's own examples.
        ("1000;w=3600", RatePolicy(1000, 3600)),
        ("10000;w=3600", RatePolicy(10000, 3600)),
        ("1000;w=86400;s=user", RatePolicy(1000, 86400, "request", "user")),
        ("500;w=3600;u=cents;s=user", RatePolicy(500, 3600, "cents", "user")),
        ("5000;w=3600;s=organization", RatePolicy(5000, 3600, "request", "organization")),
        ("10;w=1000;u=cents;s=user", RatePolicy(10, 1000, "cents", "user")),
        # Names and unit in any case; the segment is lower-cased (matched case-insensitively).
        ("7;W=60;U=CENTS;S=Organization", RatePolicy(7, 60, "cents", "organization")),
        ("7;w=60;u=Request", RatePolicy(7, 60, "request", None)),
        ("7;w=60;s=My_Tier-2", RatePolicy(7, 60, "request", "my_tier-2")),
        # The value as a whole is trimmed like any header value.
        ("  3;w=60  ", RatePolicy(3, 60)),
        # Leading zeros are digits like any other.
        ("007;w=0060", RatePolicy(7, 60)),
    ],
)
def test_valid_policies(value: str, expected: RatePolicy) -> None:
    assert parse_policy(value) == expected


@pytest.mark.parametrize(
    ("window", "valid"),
    [(59, False), (60, True), (61, True), (31_536_000, True), (31_536_001, False), (0, False)],
)
def test_window_bounds(window: int, valid: bool) -> None:
    if valid:
        assert parse_policy(f"5;w={window}").window == window
    else:
        with pytest.raises(PolicyError) as caught:
            parse_policy(f"5;w={window}")
        assert caught.value.part == "w"
        assert "at least 60" in caught.value.message


@pytest.mark.parametrize("unit", ["request", "cents"])
def test_quota_bounds(unit: str) -> None:
    assert parse_policy(f"1;w=60;u={unit}").quota == 1
    top = MAX_QUOTA["cents" if unit == "cents" else "request"]
    assert parse_policy(f"{top};w=60;u={unit}").quota == top
    for quota in ("0", str(top + 1)):
        with pytest.raises(PolicyError) as caught:
            parse_policy(f"{quota};w=60;u={unit}")
        assert caught.value.part == "quota"


def test_a_cents_quota_is_counted_exactly() -> None:
    """Cents are counted in nano-dollars; the largest quota still fits a double exactly."""
    top = parse_policy(f"{MAX_QUOTA['cents']};w=60;u=cents")
    assert top.quota_units <= 2**53 - 1
    assert float(top.quota_units) == top.quota_units


@pytest.mark.parametrize(
    ("value", "part"),
    [
        ("", "quota"),
        ("   ", "quota"),
        ("basic-100", "quota"),  # the integration pages' example
        ("-5;w=60", "quota"),
        ("+5;w=60", "quota"),
        ("0.5;w=60;u=cents", "quota"),  # a fork's decimal quota: not in the reference parser
        ("1e3;w=60", "quota"),
        ("\u0661\u0662;w=60", "quota"),  # Arabic-Indic digits are not [0-9]
        ("5", "w"),
        ("5;u=cents", "w"),  # w is required and comes first
        ("5;w=", "w"),
        ("5;w=6o", "w"),
        ("5;w=60.5", "w"),
        ("5;w=60;u=tokens", "u"),
        ("5;w=60;u=", "u"),
        ("5;w=60;s=", "s"),
        ("5;w=60;s=org.id", "s"),
        ("5;w=60;s=\uff55\uff53\uff45\uff52", "s"),  # fullwidth "user": not [A-Za-z]
        ("5;w=60;s=user;u=cents", "u"),  # out of the grammar's order
        ("5;w=60;w=120", "w"),  # repeated
        ("5;w=60;x=1", "policy"),
        ("5;w=60;", "policy"),
        ("5; w=60", "policy"),  # no spaces inside
        ("5;w =60", "policy"),
    ],
)
def test_invalid_policies_name_the_part(value: str, part: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(value)
    assert caught.value.part == part, caught.value.message


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("1000;w=3600", "1000;w=3600"),
        ("1000;w=3600;u=request", "1000;w=3600"),  # u omitted when it is the default
        ("1000;W=3600;U=REQUEST;S=USER", "1000;w=3600;s=user"),
        ("0500;w=3600;u=Cents", "500;w=3600;u=cents"),
        ("5;w=60;u=cents;s=Organization", "5;w=60;u=cents;s=organization"),
    ],
)
def test_canonical_form(value: str, canonical: str) -> None:
    policy = parse_policy(value)
    assert policy.canonical == canonical
    assert parse_policy(canonical) == policy  # the canonical form reads back the same
