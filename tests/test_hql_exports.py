"""HQL CSV exports: the CSV itself and the local store's signed, expiring links."""

from __future__ import annotations

import csv
import io
import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from logging_pipeline.hql import rows_to_csv
from logging_pipeline.hql.exports import LinkError, LocalExports

ORG = "aaaaaaaa-0000-4000-8000-000000000001"


def test_csv_cells() -> None:
    rows = [
        {
            "a": None,
            "b": True,
            "c": {"k": [1, 2]},
            "d": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "e": '=HYPERLINK("x")',
            "f": -5,
            "g": Decimal("1.50"),
            "h": 'quote " and, comma\nnewline',
        }
    ]
    text = rows_to_csv(rows).decode()
    assert text.splitlines()[0] == "a,b,c,d,e,f,g,h"
    parsed = next(csv.DictReader(io.StringIO(text)))
    assert parsed == {
        "a": "",
        "b": "true",
        "c": '{"k":[1,2]}',
        "d": "2024-01-02T03:04:05+00:00",
        "e": '\'=HYPERLINK("x")',
        "f": "-5",
        "g": "1.50",
        "h": 'quote " and, comma\nnewline',
    }
    assert rows_to_csv([]) == b""


async def test_local_links(tmp_path: Path) -> None:
    exports = LocalExports(tmp_path / "exports", tmp_path / "links.key", ttl_seconds=3600)
    link = await exports.save(ORG, b"a\r\n1\r\n")
    parts = urlsplit(link)
    _, _, _, _, org, name = parts.path.split("/")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert (
        org == ORG
        and exports.open(org, name, query["expires"], query["signature"]).read_bytes()
        == b"a\r\n1\r\n"
    )
    assert oct((tmp_path / "links.key").stat().st_mode & 0o777) == "0o600"
    # The same key directory signs alike in another process (here: another instance).
    again = LocalExports(tmp_path / "exports", tmp_path / "links.key", ttl_seconds=3600)
    assert again.signature(org, name, int(query["expires"])) == query["signature"]
    for args in (
        (org, name, str(int(query["expires"]) + 1), query["signature"]),
        (org, name, query["expires"], "0" * 64),
        ("bbbbbbbb-0000-4000-8000-000000000002", name, query["expires"], query["signature"]),
        (org, "../../links.key", query["expires"], query["signature"]),
        (org, name, "-1", query["signature"]),
        (org, name, query["expires"], "not-hex"),
    ):
        with pytest.raises(LinkError):
            exports.open(*args)
    past = int(time.time()) - 10
    with pytest.raises(LinkError, match="expired"):
        exports.open(org, name, str(past), exports.signature(org, name, past))


async def test_old_exports_are_swept(tmp_path: Path) -> None:
    exports = LocalExports(tmp_path / "exports", tmp_path / "links.key", ttl_seconds=60)
    first = urlsplit(await exports.save(ORG, b"x")).path.split("/")[-1]
    old = tmp_path / "exports" / ORG / first
    os.utime(old, (time.time() - 120, time.time() - 120))
    await exports.save(ORG, b"y")
    assert not old.exists()
    assert len(list((tmp_path / "exports" / ORG).glob("hql-export-*.csv"))) == 1


def test_signing_key_is_random_and_corruption_is_refused(tmp_path: Path) -> None:
    exports = LocalExports(tmp_path / "e", tmp_path / "k" / "links.key", ttl_seconds=60)
    signature = exports.signature(ORG, "n", 1)
    key = (tmp_path / "k" / "links.key").read_text()
    assert len(key) == 64 and key != "0" * 64
    other = LocalExports(tmp_path / "e2", tmp_path / "k2.key", ttl_seconds=60)
    assert other.signature(ORG, "n", 1) != signature
    (tmp_path / "bad.key").write_text("")
    with pytest.raises(LinkError):
        LocalExports(tmp_path / "e3", tmp_path / "bad.key", ttl_seconds=60).signature(ORG, "n", 1)
