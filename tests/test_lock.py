"""The lock files agree with pyproject.toml, and the environment agrees with the lock.

`make` installs only from `requirements-dev.lock` (`--require-hashes --no-deps`) and the image
only from `requirements.lock`, so a dependency added to pyproject.toml without `make lock`
would be missing from both, and a hand-edited pin could break a specifier: these tests catch
either before it ships. The locks are resolved for CPython 3.11 on Linux x86_64.
"""

from __future__ import annotations

import hashlib
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
# The platform the locks are resolved for (Makefile LOCK_TARGET): markers are judged there.
TARGET_ENV = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    extras: frozenset[str]
    hashes: tuple[str, ...]


def parse_lock(text: str) -> dict[str, Pin]:
    """Parse a `uv pip compile --generate-hashes` file: `name[extras]==version \\` lines, each
    followed by its `--hash=` continuation lines; comments and `# via` notes are skipped."""
    pins: dict[str, Pin] = {}
    entries: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if not line:
            continue
        if line.startswith("--hash="):
            assert entries, f"hash before any requirement: {raw!r}"
            entries[-1].append(line)
        else:
            assert not line.startswith("-"), f"unexpected option in the lock: {raw!r}"
            entries.append([line])
    for spec, *hash_lines in entries:
        req = Requirement(spec)
        assert not req.marker, f"{spec}: the lock is for one platform and has no markers"
        specifiers = list(req.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{spec} is not pinned"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{name} is pinned twice"
        hashes = tuple(h.removeprefix("--hash=") for h in hash_lines)
        pins[name] = Pin(name, Version(specifiers[0].version), frozenset(req.extras), hashes)
    return pins


def pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def requirements(*keys: str) -> list[Requirement]:
    """The requirements at a dotted path of pyproject.toml, e.g. `project.dependencies`."""
    node: object = pyproject()
    for key in keys:
        assert isinstance(node, dict), keys
        node = node[key]
    assert isinstance(node, list), keys
    return [Requirement(str(item)) for item in node]


def applies(req: Requirement, extras: frozenset[str] = frozenset()) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**TARGET_ENV, "extra": extra}) for extra in (extras or {""}))


def assert_pinned(reqs: list[Requirement], pins: dict[str, Pin], lock: str) -> None:
    missing = []
    for req in reqs:
        if not applies(req):
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            missing.append(f"{req}: not in {lock}")
        elif not req.specifier.contains(pin.version, prereleases=True):
            missing.append(f"{req}: {lock} pins {pin.version}")
        elif not req.extras <= pin.extras:
            missing.append(f"{req}: {lock} lost the extras {sorted(req.extras - pin.extras)}")
    assert not missing, "run `make lock`:\n" + "\n".join(missing)


def test_parse_lock_reads_pins_extras_and_hashes() -> None:
    pins = parse_lock(
        "# header\nmoto[server]==5.0.1 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        "    # via llm-gateway (pyproject.toml)\nsix==1.0\n"
    )
    assert pins["moto"] == Pin(
        canonicalize_name("moto"),
        Version("5.0.1"),
        frozenset({"server"}),
        ("sha256:aa", "sha256:bb"),
    )
    assert pins["six"].hashes == ()
    with pytest.raises(AssertionError, match="not pinned"):
        parse_lock("six>=1.0 \\\n    --hash=sha256:aa\n")


def test_runtime_lock_pins_every_dependency_and_build_requirement() -> None:
    pins = parse_lock(RUNTIME_LOCK.read_text())
    assert_pinned(requirements("project", "dependencies"), pins, RUNTIME_LOCK.name)
    assert_pinned(requirements("build-system", "requires"), pins, RUNTIME_LOCK.name)


def test_dev_lock_pins_runtime_dev_and_build_requirements() -> None:
    pins = parse_lock(DEV_LOCK.read_text())
    assert_pinned(requirements("project", "dependencies"), pins, DEV_LOCK.name)
    assert_pinned(requirements("project", "optional-dependencies", "dev"), pins, DEV_LOCK.name)
    # The embedded log engine: `make run` and the tests use it; the image does not.
    assert_pinned(requirements("project", "optional-dependencies", "embedded"), pins, DEV_LOCK.name)
    assert_pinned(requirements("build-system", "requires"), pins, DEV_LOCK.name)


def test_runtime_lock_leaves_the_embedded_engine_out() -> None:
    """The image installs only the runtime lock: the `embedded` extra (chdb, ~500 MB, and what
    only it needs) stays out unless a runtime dependency needs the same package."""
    runtime = parse_lock(RUNTIME_LOCK.read_text())
    extra = {
        canonicalize_name(r.name)
        for r in requirements("project", "optional-dependencies", "embedded")
    }
    assert extra and not extra & set(runtime), sorted(extra & set(runtime))


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_every_pin_has_a_sha256_hash(lock: Path) -> None:
    pins = parse_lock(lock.read_text())
    assert pins
    unhashed = [name for name, pin in pins.items() if not pin.hashes]
    assert not unhashed, f"{lock.name}: no hash for {unhashed}"
    for pin in pins.values():
        for digest in pin.hashes:
            algorithm, _, value = digest.partition(":")
            assert algorithm == "sha256" and len(value) == 64, f"{pin.name}: {digest}"


def test_dev_lock_agrees_with_runtime_lock() -> None:
    """The image and the tests run the same versions of every runtime package."""
    runtime = parse_lock(RUNTIME_LOCK.read_text())
    dev = parse_lock(DEV_LOCK.read_text())
    differ = [
        f"{name}: {pin.version} vs {dev[name].version if name in dev else 'missing'}"
        for name, pin in runtime.items()
        if name not in dev or dev[name].version != pin.version
    ]
    assert not differ, "run `make lock`:\n" + "\n".join(differ)


def installed_from_this_lock() -> bool:
    """True when this interpreter's environment was installed by `make` from the current dev
    lock: the Makefile's stamp holds the lock's sha256. Other environments (a shared venv set up
    by hand) are not expected to match it."""
    stamp = Path(sys.prefix) / ".installed"
    if not stamp.is_file():
        return False
    digest = hashlib.sha256(DEV_LOCK.read_bytes()).hexdigest()
    return stamp.read_text().split()[:1] == [digest]


needs_locked_env = pytest.mark.skipif(
    not installed_from_this_lock(),
    reason="this environment was not installed from requirements-dev.lock by `make install`",
)


@needs_locked_env
def test_installed_versions_match_the_lock() -> None:
    pins = parse_lock(DEV_LOCK.read_text())
    wrong = []
    for pin in pins.values():
        try:
            version = Version(metadata.version(pin.name))
        except metadata.PackageNotFoundError:
            wrong.append(f"{pin.name}: not installed")
            continue
        if version != pin.version:
            wrong.append(f"{pin.name}: installed {version}, locked {pin.version}")
    assert not wrong, "\n".join(wrong)


@needs_locked_env
def test_lock_is_closed_under_dependencies() -> None:
    """Every dependency of every locked package (with the extras the lock asks for) is locked at
    a satisfying version: `--no-deps` installs would otherwise miss or mismatch it silently."""
    pins = parse_lock(DEV_LOCK.read_text())
    problems = []
    for pin in pins.values():
        for spec in metadata.requires(pin.name) or []:
            req = Requirement(spec)
            if not applies(req, pin.extras):
                continue
            dep = pins.get(canonicalize_name(req.name))
            if dep is None:
                problems.append(f"{pin.name} needs {req}: not locked")
            elif not req.specifier.contains(dep.version, prereleases=True):
                problems.append(f"{pin.name} needs {req}: locked {dep.version}")
    assert not problems, "\n".join(problems)
