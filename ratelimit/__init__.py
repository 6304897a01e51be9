"""Rate limits: ``Helicone-RateLimit-Policy`` enforced per organisation, user or property.

In process by default, on Redis when ``REDIS_URL`` is set (shared by every gateway process
using that server); GCRA counters, atomic on both (ratelimit/_buckets.py); cents policies
reserve an estimate and settle to the real cost (ratelimit/_cost.py); an unreachable Redis
fails open (ratelimit/_limiter.py); far from its limit a process leases a block of a
counter's units at a time, exactly (ratelimit/_lease.py). The README's "Rate limits" section
is the user's view.
"""

from ratelimit._buckets import (
    GCRA,
    BackendUnavailable,
    Buckets,
    Decision,
    LuaScript,
    MemoryBuckets,
    RedisBuckets,
    ScriptRunner,
)
from ratelimit._cost import CostEstimate, answer_cost, estimate_cost, json_payload
from ratelimit._lease import LeasedBuckets
from ratelimit._limiter import Limiter, Ticket
from ratelimit._policy import MAX_QUOTA, PolicyError, RatePolicy, parse_policy
from ratelimit._redis import PooledScripts, RedisPool, RedisScripts

__all__ = [
    "GCRA",
    "MAX_QUOTA",
    "BackendUnavailable",
    "Buckets",
    "CostEstimate",
    "Decision",
    "LeasedBuckets",
    "Limiter",
    "LuaScript",
    "MemoryBuckets",
    "PolicyError",
    "PooledScripts",
    "RatePolicy",
    "RedisBuckets",
    "RedisPool",
    "RedisScripts",
    "ScriptRunner",
    "Ticket",
    "answer_cost",
    "estimate_cost",
    "json_payload",
    "parse_policy",
]
