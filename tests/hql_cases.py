"""HQL cases shared by the HQL tests: the documented examples and the validator regressions."""

from __future__ import annotations

EXAMPLES: dict[str, str] = {
    "top_costly": (
        "SELECT request_created_at, request_model, response_body, provider_total_cost "
        "FROM request_response_rmt WHERE request_created_at > now() - INTERVAL 7 DAY "
        "ORDER BY provider_total_cost DESC LIMIT 100"
    ),
    "error_rate": (
        "SELECT COUNTIf(status BETWEEN 400 AND 599) AS error_count, COUNT() AS total_requests, "
        "ROUND(error_count / total_requests, 4) AS error_rate FROM request_response_rmt "
        "WHERE request_created_at >= toDateTime64(now(), 3) - INTERVAL 24 HOUR"
    ),
    "dau": (
        "SELECT toDate(request_created_at) AS day, COUNT(DISTINCT user_id) AS dau "
        "FROM request_response_rmt "
        "WHERE request_created_at >= toDateTime64(now(), 3) - INTERVAL 14 DAY "
        "GROUP BY day ORDER BY day"
    ),
    "sessions": (
        "SELECT properties['Helicone-Session-Id'] AS session_id, COUNT(*) AS requests, "
        "sum(cost) AS total_cost FROM request_response_rmt "
        "WHERE request_created_at >= toDateTime64(now(), 3) - INTERVAL 7 DAY "
        "AND properties['Helicone-Session-Id'] IS NOT NULL "
        "GROUP BY session_id ORDER BY total_cost DESC LIMIT 100"
    ),
    "cost_by_model": (
        "SELECT request_model, sum(cost) AS total_cost, COUNT() AS request_count "
        "FROM request_response_rmt "
        "WHERE request_created_at >= toDateTime64(now(), 3) - INTERVAL 30 DAY "
        "GROUP BY request_model ORDER BY total_cost DESC"
    ),
    "rest": (
        "SELECT request_model, COUNT(*) as count FROM request_response_rmt "
        "WHERE request_created_at > now() - INTERVAL 7 DAY GROUP BY request_model "
        "ORDER BY count DESC LIMIT 10"
    ),
    "download": (
        "SELECT * FROM request_response_rmt WHERE request_created_at > now() - INTERVAL 1 DAY "
        "LIMIT 1000"
    ),
    "cost_usd": (
        "SELECT request_model, sum(cost) / 1000000000 AS total_cost_usd "
        "FROM request_response_rmt WHERE request_created_at > now() - INTERVAL 7 DAY "
        "GROUP BY request_model"
    ),
}
"""Every query of the HQL documentation, verbatim (features/hql)."""

REJECTED: dict[str, tuple[str, str]] = {
    # statements
    "multiple statements": ("SELECT 1; SELECT 2", "HQL_INVALID_STATEMENT"),
    "set then select": ("SET max_execution_time = 0; SELECT 1", "HQL_INVALID_STATEMENT"),
    "insert": (
        "INSERT INTO request_response_rmt SELECT * FROM request_response_rmt",
        "HQL_INVALID_STATEMENT",
    ),
    "drop": ("DROP TABLE request_response_rmt", "HQL_INVALID_STATEMENT"),
    "alter": ("ALTER TABLE request_response_rmt DELETE WHERE 1", "HQL_INVALID_STATEMENT"),
    "show": ("SHOW TABLES", "HQL_INVALID_STATEMENT"),
    "describe": ("DESCRIBE TABLE system.tables", "HQL_INVALID_STATEMENT"),
    "cte": ("WITH x AS (SELECT 1) SELECT * FROM x", "HQL_INVALID_STATEMENT"),
    "cte in subquery": (
        "SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x)",
        "HQL_INVALID_STATEMENT",
    ),
    "top-level union": (
        "SELECT 1 FROM request_response_rmt UNION ALL SELECT 2",
        "HQL_INVALID_STATEMENT",
    ),
    # tables
    "other table": ("SELECT * FROM users", "HQL_INVALID_TABLE"),
    "db-qualified own table": ("SELECT * FROM default.request_response_rmt", "HQL_INVALID_TABLE"),
    "system.tables": ("SELECT * FROM system.tables", "HQL_INVALID_TABLE"),
    "system.row_policies": ("SELECT * FROM system.row_policies", "HQL_INVALID_TABLE"),
    "information_schema": ("SELECT * FROM information_schema.tables", "HQL_INVALID_TABLE"),
    "system in subquery": (
        "SELECT * FROM request_response_rmt WHERE user_id IN (SELECT name FROM system.users)",
        "HQL_INVALID_TABLE",
    ),
    "system in scalar subquery": (
        "SELECT (SELECT count() FROM system.tables)",
        "HQL_INVALID_TABLE",
    ),
    "exists system": ("SELECT exists(SELECT 1 FROM system.one)", "HQL_INVALID_TABLE"),
    "join other table": (
        "SELECT * FROM request_response_rmt a JOIN secrets b ON a.user_id = b.id",
        "HQL_INVALID_TABLE",
    ),
    "in table": ("SELECT * FROM request_response_rmt WHERE user_id IN users", "HQL_INVALID_TABLE"),
    "in parenthesised table": (
        "SELECT * FROM request_response_rmt WHERE user_id IN (users)",
        "HQL_INVALID_TABLE",
    ),
    "in qualified table": (
        "SELECT * FROM request_response_rmt WHERE user_id IN (default.secrets)",
        "HQL_INVALID_TABLE",
    ),
    "in table without parentheses at the end": (
        "SELECT * FROM request_response_rmt WHERE user_id NOT IN users",
        "HQL_INVALID_TABLE",
    ),
    "in function": ("SELECT in(1, secrets)", "HQL_SQL_INJECTION_ATTEMPT"),
    "in function upper": (
        "SELECT x FROM (SELECT 1 AS x) WHERE IN(x, secrets)",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "notIn function": ("SELECT notIn(1, secrets)", "HQL_SQL_INJECTION_ATTEMPT"),
    "globalIn function": ("SELECT globalIn(1, secrets)", "HQL_SQL_INJECTION_ATTEMPT"),
    "nullIn function": ("SELECT nullIn(1, secrets)", "HQL_SQL_INJECTION_ATTEMPT"),
    "internal function": ("SELECT __getScalar('x')", "HQL_SQL_INJECTION_ATTEMPT"),
    "mergeTreeIndex": (
        "SELECT * FROM mergeTreeIndex(currentDatabase(), request_response_rmt)",
        "HQL_INVALID_TABLE",
    ),
    "MERGETREEINDEX upper": (
        "SELECT * FROM MERGETREEINDEX(currentDatabase(), request_response_rmt)",
        "HQL_INVALID_TABLE",
    ),
    "table function behind comment": (
        "SELECT * FROM/**/mergeTreeIndex(currentDatabase(), request_response_rmt)",
        "HQL_INVALID_TABLE",
    ),
    "numbers": ("SELECT * FROM numbers(10)", "HQL_INVALID_TABLE"),
    "url metadata": (
        "SELECT * FROM url('http://169.254.169.254/', 'RawBLOB')",
        "HQL_INVALID_TABLE",
    ),
    "comma join": ("SELECT * FROM request_response_rmt, numbers(10)", "HQL_INVALID_TABLE"),
    "comma join table": (
        "SELECT * FROM request_response_rmt a, request_response_rmt b",
        "HQL_INVALID_TABLE",
    ),
    "comma after join on": (
        "SELECT * FROM request_response_rmt a JOIN request_response_rmt b "
        "ON a.request_id = b.request_id, secrets",
        "HQL_INVALID_TABLE",
    ),
    "comma after join using": (
        "SELECT * FROM request_response_rmt a JOIN request_response_rmt b USING (request_id), "
        "secrets",
        "HQL_INVALID_TABLE",
    ),
    "comma join in subquery": (
        "SELECT * FROM (SELECT * FROM request_response_rmt a JOIN request_response_rmt b "
        "ON a.request_id = b.request_id, secrets)",
        "HQL_INVALID_TABLE",
    ),
    "parenthesised table function": ("SELECT * FROM (numbers(10))", "HQL_INVALID_TABLE"),
    "table function in join": (
        "SELECT * FROM request_response_rmt JOIN (url('http://x/', 'CSV')) u ON 1",
        "HQL_INVALID_TABLE",
    ),
    "table function in where": (
        "SELECT * FROM request_response_rmt WHERE 1 IN (SELECT * FROM numbers(3))",
        "HQL_INVALID_TABLE",
    ),
    "table function as scalar": (
        "SELECT numbers(10) FROM request_response_rmt",
        "HQL_INVALID_TABLE",
    ),
    "file function": ("SELECT file('/etc/passwd')", "HQL_INVALID_TABLE"),
    "remote": (
        "SELECT * FROM remote('other:9000', default.request_response_rmt)",
        "HQL_INVALID_TABLE",
    ),
    # functions reading outside the row
    "getSetting": ("SELECT getSetting('max_execution_time')", "HQL_SQL_INJECTION_ATTEMPT"),
    "joinGet": ("SELECT joinGet('t', 'v', 1)", "HQL_SQL_INJECTION_ATTEMPT"),
    "dictGet": ("SELECT dictGet('d', 'v', 1)", "HQL_SQL_INJECTION_ATTEMPT"),
    # lexical hardening
    "settings": (
        "SELECT * FROM request_response_rmt SETTINGS max_execution_time = 0",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "settings lowercase": (
        "select * from request_response_rmt settings readonly=0",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "settings in subquery": (
        "SELECT * FROM (SELECT * FROM request_response_rmt SETTINGS readonly = 0)",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "settings after literal with --": (
        "SELECT '--' FROM request_response_rmt SETTINGS readonly = 0",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "settings after escaped quote": (
        "SELECT 'it\\'s' FROM request_response_rmt SETTINGS readonly = 0",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "settings after doubled quote": (
        "SELECT 'it''s' FROM request_response_rmt SETTINGS readonly = 0",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "org setting name": (
        "SELECT * FROM request_response_rmt SETTINGS SQL_helicone_organization_id = 'x'",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "org setting in literal": (
        "SELECT 'sql helicone organization id'",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "org setting in comment": (
        "SELECT 1 -- SQL_HELICONE_ORGANIZATION_ID",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "backtick identifier": ("SELECT * FROM `system`.`tables`", "HQL_SQL_INJECTION_ATTEMPT"),
    "double-quoted identifier": ('SELECT * FROM "system"."tables"', "HQL_SQL_INJECTION_ATTEMPT"),
    "quoted table function": ('SELECT * FROM "numbers"(10)', "HQL_SQL_INJECTION_ATTEMPT"),
    "heredoc": ("SELECT $$ SETTINGS $$", "HQL_SQL_INJECTION_ATTEMPT"),
    "hash comment": ("SELECT 1 # comment", "HQL_SQL_INJECTION_ATTEMPT"),
    "unterminated literal": ("SELECT 'abc FROM request_response_rmt", "HQL_SQL_INJECTION_ATTEMPT"),
    "unterminated comment": ("SELECT 1 /* FROM system.tables", "HQL_SQL_INJECTION_ATTEMPT"),
    "query parameter": ("SELECT {hql_org:String}", "HQL_SQL_INJECTION_ATTEMPT"),
    "format clause": (
        "SELECT 1 FROM request_response_rmt FORMAT JSON",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    "into outfile": (
        "SELECT 1 FROM request_response_rmt INTO OUTFILE '/tmp/x'",
        "HQL_SQL_INJECTION_ATTEMPT",
    ),
    # shape
    "empty": ("   ", "HQL_MISSING_QUERY_SQL"),
    "only semicolon": (";", "HQL_MISSING_QUERY_SQL"),
    "not a string": (123, "HQL_MISSING_QUERY_SQL"),  # type: ignore[dict-item]
    "unbalanced": ("SELECT (1", "HQL_SYNTAX_ERROR"),
    "limit expression": ("SELECT 1 FROM request_response_rmt LIMIT 1 + 1", "HQL_SYNTAX_ERROR"),
}
"""Queries the validator must refuse, with the code (the reference's regression list and
more)."""

ACCEPTED: dict[str, str] = {
    "final": "SELECT count() FROM request_response_rmt FINAL",
    "self join": (
        "SELECT a.request_id FROM request_response_rmt a "
        "LEFT JOIN request_response_rmt b ON a.request_id = b.request_id"
    ),
    "double parenthesised subquery join": (
        "SELECT count() FROM request_response_rmt a "
        "JOIN ((SELECT request_id FROM request_response_rmt)) b ON a.request_id = b.request_id"
    ),
    "map subscript": "SELECT properties['env'] FROM request_response_rmt",
    "limit offset, count": "SELECT request_id FROM request_response_rmt LIMIT 1, 2",
    "limit offset keyword": "SELECT request_id FROM request_response_rmt LIMIT 2 OFFSET 1",
    "trailing semicolon": "SELECT count() FROM request_response_rmt;",
    "substring from for": "SELECT substring(model FROM 1 FOR 3) FROM request_response_rmt",
    "extract from": "SELECT extract(DAY FROM request_created_at) FROM request_response_rmt",
    "keywords in literals": (
        "SELECT 'FROM system.tables; SETTINGS readonly=0 -- ' AS s FROM request_response_rmt"
    ),
    "keywords in comments": (
        "SELECT count() /* FROM system.tables */ FROM request_response_rmt -- SETTINGS x\n"
    ),
    "union in subquery": (
        "SELECT count() FROM (SELECT request_id FROM request_response_rmt "
        "UNION ALL SELECT request_id FROM request_response_rmt)"
    ),
    "except columns": "SELECT * EXCEPT (request_body) FROM request_response_rmt",
    "array join of several arrays": (
        "SELECT count() FROM request_response_rmt ARRAY JOIN [1, 2] AS p, [3, 4] AS r"
    ),
    "join after array join": (
        "SELECT count() FROM request_response_rmt a ARRAY JOIN [1, 2] AS p "
        "JOIN request_response_rmt b ON a.request_id = b.request_id"
    ),
    "join using list": (
        "SELECT count() FROM request_response_rmt a JOIN request_response_rmt b "
        "USING (request_id, model)"
    ),
    "array join": (
        "SELECT k, count() FROM request_response_rmt ARRAY JOIN mapKeys(properties) AS k GROUP BY k"
    ),
    "in subquery": (
        "SELECT count() FROM request_response_rmt WHERE request_id IN "
        "(SELECT request_id FROM request_response_rmt WHERE status = 200)"
    ),
    "limit by": "SELECT user_id FROM request_response_rmt LIMIT 1 BY user_id",
    "format function": "SELECT format('{} {}', model, user_id) FROM request_response_rmt",
    "qualified column": (
        "SELECT request_response_rmt.model FROM request_response_rmt ORDER BY request_id"
    ),
    "with totals": "SELECT model, count() FROM request_response_rmt GROUP BY model WITH TOTALS",
    "position in": "SELECT position('a' IN model) FROM request_response_rmt",
    "in list": "SELECT count() FROM request_response_rmt WHERE model IN ('a', 'b')",
    "in tuple of columns": (
        "SELECT count() FROM request_response_rmt WHERE 'x' IN (user_id, model)"
    ),
    "in operator before a function": (
        "SELECT count() FROM request_response_rmt WHERE 'x' IN tuple('x', 'y')"
    ),
    "not in list": "SELECT count() FROM request_response_rmt WHERE model NOT IN ('a')",
    "global not in subquery": (
        "SELECT count() FROM request_response_rmt WHERE (model) GLOBAL NOT IN "
        "(SELECT model FROM request_response_rmt WHERE status = 500)"
    ),
}
"""Queries the validator must accept (and the engine run) — the reference's accepted list and
more."""
