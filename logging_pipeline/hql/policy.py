"""The ClickHouse server side of HQL isolation: a read-only HQL user and its row policy.

On a ClickHouse server, the engine itself keeps each organisation to its rows: HQL runs as a
dedicated user whose row policy on ``request_response_rmt`` only lets through rows whose
``organization_id`` equals the query's ``SQL_helicone_organization_id`` setting, which the
gateway sends with every HQL query (and which the validator forbids the query text to name).
An unset setting fails the query (``getSetting`` of an unknown custom setting is an error),
so a query that somehow lacks it sees nothing rather than everything.

Apply the statements once, as an administrator (the gateway's own user usually cannot create
users), then set ``GATEWAY_HQL_CLICKHOUSE_URL`` to this user's URL. ``SQL_`` is ClickHouse's
default ``custom_settings_prefixes``; a server configured otherwise needs it added. The
policy is permissive and names only the HQL user: the gateway's own user (the writer, the
request API) is not filtered as long as the server's
``users_without_row_policies_can_read_rows`` is on (its default); where it is off, give that
user its own ``USING 1`` policy.
The embedded engine (chdb) has no users, row policies or custom settings: there the
org-scoped rewrite of :mod:`~logging_pipeline.hql.validate` is the engine-side boundary.
"""

from __future__ import annotations

import re

from logging_pipeline.hql.execute import ORG_SETTING
from logging_pipeline.hql.validate import TABLE

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def row_policy_statements(database: str, user: str, password: str) -> list[str]:
    """The DDL that creates the HQL user, its grant, settings profile and row policy."""
    for label, value in (("database", database), ("user", user)):
        if not _NAME.fullmatch(value):
            raise ValueError(f"{label} must be a plain identifier, got {value!r}")
    secret = password.replace("\\", "\\\\").replace("'", "\\'")
    return [
        f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_password BY '{secret}' "
        f"DEFAULT DATABASE {database}",
        # Caps the user cannot raise. No readonly here: the user holds one SELECT grant and
        # nothing else, and the gateway sends readonly = 1 with each query (which a profile's
        # readonly = 1 would forbid it to send, with the org setting).
        f"CREATE SETTINGS PROFILE IF NOT EXISTS hql_profile SETTINGS "
        f"max_execution_time = 30 MAX 30, max_memory_usage = 4000000000 MAX 4000000000 "
        f"TO {user}",
        f"GRANT SELECT ON {database}.{TABLE} TO {user}",
        f"CREATE ROW POLICY IF NOT EXISTS hql_org_isolation ON {database}.{TABLE} "
        f"USING organization_id = toUUID(getSetting('{ORG_SETTING}')) TO {user}",
    ]
