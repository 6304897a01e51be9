"""The committed dashboard build (gateway/dashboard/static/) is the build of the committed
sources, ships in the wheel, and refers to nothing outside the gateway.

Rebuilding needs Node.js and the npm packages (``make dashboard``); these checks do not: the
build records the digest of the sources it was built from (dashboard/source_digest.py), and a
source change committed without ``make dashboard`` fails here.
"""

from __future__ import annotations

import re
import runpy
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "gateway" / "dashboard" / "static"


def test_the_committed_build_is_of_the_committed_sources() -> None:
    digest = runpy.run_path(str(ROOT / "dashboard" / "source_digest.py"))["source_digest"]()
    recorded = (STATIC / "SOURCE_DIGEST").read_text().strip()
    assert recorded == digest, "dashboard/ changed since the last build: run `make dashboard`"


def test_the_page_refers_to_its_own_assets_only() -> None:
    index = (STATIC / "index.html").read_text()
    referenced = re.findall(r'(?:src|href)="(/dashboard/assets/[^"]+)"', index)
    assert referenced, index
    built = {f"/dashboard/{p.relative_to(STATIC).as_posix()}" for p in STATIC.rglob("assets/*")}
    assert set(referenced) == built  # nothing missing, nothing stale left behind
    for path in [STATIC / "index.html", *STATIC.rglob("assets/*")]:
        text = path.read_text()
        assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]{2,}/", text), path.name
        assert "<script>" not in text and " style=" not in text  # the CSP forbids inline


def test_the_build_ships_in_the_wheel() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gateway"]
    packaged = {p for pattern in patterns for p in (ROOT / "gateway").glob(pattern)}
    assert {STATIC / "index.html", *STATIC.rglob("assets/*")} <= packaged
