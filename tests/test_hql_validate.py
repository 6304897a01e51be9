"""The HQL lexer and validator: every regression case of reference §3 "Safety rules"."""

from __future__ import annotations

import pytest

from logging_pipeline.hql import HqlError, prepare, tokenize
from logging_pipeline.hql.errors import STATUS
from logging_pipeline.hql.lexer import render
from logging_pipeline.hql.validate import check
from tests.hql_cases import ACCEPTED, EXAMPLES, REJECTED

ORG = "aaaaaaaa-0000-4000-8000-000000000001"
COLUMNS = ["request_id", "model", "user_id", "properties", "request_created_at", "cost"]


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected(name: str) -> None:
    sql, code = REJECTED[name]
    with pytest.raises(HqlError) as info:
        prepare(sql, ORG, COLUMNS, 10_000)
    assert info.value.code == code, info.value.details
    assert info.value.status == 400
    assert set(info.value.body()) == {"code", "message", "details"}


@pytest.mark.parametrize("name", sorted(ACCEPTED) + sorted(EXAMPLES))
def test_accepted(name: str) -> None:
    sql = ACCEPTED.get(name) or EXAMPLES[name]
    prepared = prepare(sql, ORG, COLUMNS, 10_000)
    assert "organization_id = {hql_org:UUID}" in prepared.sql
    assert prepared.params == {"hql_org": ORG}


def test_every_table_reference_is_scoped() -> None:
    sql = (
        "SELECT a.model FROM request_response_rmt a JOIN request_response_rmt AS b "
        "ON a.request_id = b.request_id WHERE a.request_id IN "
        "(SELECT request_id FROM request_response_rmt FINAL)"
    )
    prepared = prepare(sql, ORG, COLUMNS, 100)
    assert prepared.sql.count("FROM request_response_rmt FINAL WHERE organization_id") == 3
    assert " a JOIN " in prepared.sql and "AS b ON" in prepared.sql
    assert prepared.sql.count("FINAL") == 3  # the user's FINAL went inside the subquery
    assert "organization_id" not in prepared.sql.split("FROM")[0]


def test_limit_injection_and_clamping() -> None:
    base = "SELECT model FROM request_response_rmt"
    assert prepare(base, ORG, COLUMNS, 10_000).sql.endswith("LIMIT 100")
    assert prepare(base, ORG, COLUMNS, 10_000).limit == 100
    assert prepare(base + " LIMIT 5", ORG, COLUMNS, 10_000).sql.endswith("LIMIT 5")
    clamped = prepare(base + " LIMIT 50000", ORG, COLUMNS, 10_000)
    assert clamped.sql.endswith("LIMIT 10000") and clamped.limit == 10_000
    assert prepare(base + " LIMIT 20, 50000", ORG, COLUMNS, 10_000).sql.endswith("LIMIT 20, 10000")
    assert prepare(base + " LIMIT 50000 OFFSET 3", ORG, COLUMNS, 10_000).sql.endswith(
        "LIMIT 10000 OFFSET 3"
    )
    by = prepare(base + " LIMIT 2 BY model", ORG, COLUMNS, 10_000)
    assert by.sql.endswith("LIMIT 2 BY model LIMIT 100")
    download = prepare(base, ORG, COLUMNS, 300_000, 300_000)
    assert download.sql.endswith("LIMIT 300000")
    nested = prepare(f"SELECT * FROM ({base} LIMIT 99999)", ORG, COLUMNS, 10_000)
    assert "LIMIT 99999)" in nested.sql and nested.sql.endswith("LIMIT 100")


def test_lexer_literals_and_comments() -> None:
    tokens = tokenize("SELECT 'a\\'b', 'c''d', x -- c\n/* a /* nested */ b */ FROM t")
    assert [t.text for t in tokens] == ["SELECT", "'a\\'b'", ",", "'c''d'", ",", "x", "FROM", "t"]
    kept = tokenize("SELECT 1 -- c", keep_comments=True)
    assert kept[-1].kind == "comment"
    assert render(tokenize("SELECT t.1, a::Int8, 1e-5, 0x1F")) == (
        "SELECT t.1, a::Int8, 1e-5, 0x1F"
    )
    for bad in (
        "SELECT 'x",
        "SELECT /* x",
        "SELECT `a`",
        'SELECT "a"',
        "SELECT $$",
        "SELECT # x",
        "SELECT {p:String}",
        "SELECT é",
    ):
        with pytest.raises(HqlError):
            tokenize(bad)


def test_trailing_semicolon_only_once() -> None:
    assert [t.text for t in check("SELECT 1;")] == ["SELECT", "1"]
    with pytest.raises(HqlError) as info:
        check("SELECT 1;;")
    assert info.value.code == "HQL_INVALID_STATEMENT"


def test_documented_statuses() -> None:
    expected = {
        "HQL_INVALID_STATEMENT": 400,
        "HQL_INVALID_TABLE": 400,
        "HQL_SYNTAX_ERROR": 400,
        "HQL_SQL_INJECTION_ATTEMPT": 400,
        "HQL_MISSING_QUERY_ID": 400,
        "HQL_MISSING_QUERY_NAME": 400,
        "HQL_MISSING_QUERY_SQL": 400,
        "HQL_QUERY_NAME_TOO_LONG": 400,
        "HQL_FEATURE_NOT_ENABLED": 403,
        "HQL_QUERY_ACCESS_DENIED": 403,
        "HQL_QUERY_NOT_FOUND": 404,
        "HQL_NO_DATA_RETURNED": 404,
        "HQL_QUERY_NAME_EXISTS": 409,
        "HQL_QUERY_TIMEOUT": 503,
        "HQL_MEMORY_LIMIT_EXCEEDED": 503,
        "HQL_ROW_LIMIT_EXCEEDED": 503,
        "HQL_RESULT_LIMIT_EXCEEDED": 503,
        "HQL_EXECUTION_FAILED": 500,
        "HQL_SCHEMA_FETCH_FAILED": 500,
        "HQL_CSV_UPLOAD_FAILED": 500,
        "HQL_CSV_URL_NOT_RETURNED": 500,
        "HQL_UNEXPECTED_ERROR": 500,
    }
    assert {code: STATUS[code] for code in expected} == expected
