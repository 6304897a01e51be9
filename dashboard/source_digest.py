"""The digest of the dashboard's sources, recorded next to the built page.

``make dashboard`` writes it to ``gateway/dashboard/static/SOURCE_DIGEST`` after building;
tests/test_dashboard_build.py recomputes it, so a change to the sources committed without
rebuilding fails the tests (without needing Node.js). Run: ``python3 dashboard/source_digest.py``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
INPUTS = ("index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts")


def source_files(root: Path = ROOT) -> list[Path]:
    """Everything the build reads: the fixed inputs and every file under ``src/``."""
    files = [root / name for name in INPUTS]
    files += sorted(p for p in (root / "src").rglob("*") if p.is_file())
    return files


def source_digest(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


if __name__ == "__main__":
    print(source_digest())
