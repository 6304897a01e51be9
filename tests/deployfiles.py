"""Reading the deployment files the way their tools do, offline: Compose interpolation and
``.env`` files, the Dockerfile's stages. Used by tests/test_deploy_*.py.

``docker compose config`` cannot run here (no compose plugin, no engine), so what it does
before validating is done here: ``.env`` parsing, ``${VAR}`` interpolation with its
``:-``/``-``/``:?``/``?`` forms and ``$$`` escapes (compose-spec ``12-interpolation.md``), YAML
anchors and merge keys (PyYAML), then validation against the official Compose schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
KUBERNETES_DIR = ROOT / "deploy" / "kubernetes"
COMPOSE_SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec" / "compose-spec.json"

_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
_ENV_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


class InterpolationError(ValueError):
    """A required variable (``${VAR:?message}``) is missing, or the syntax is invalid."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of one string value."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            end = _closing_brace(text, i + 2)
            out.append(_expand(text[i + 2 : end], env))
            i = end + 1
        elif (match := _NAME.match(text, i + 1)) is not None:
            out.append(env.get(match.group(), ""))
            i = match.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for position in range(start, len(text)):
        if text.startswith("${", position):
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return position
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def _expand(body: str, env: Mapping[str, str]) -> str:
    match = _NAME.match(body)
    if match is None:
        raise InterpolationError(f"invalid variable in ${{{body}}}")
    name, rest = match.group(), body[match.end() :]
    value = env.get(name)
    if not rest:
        return value or ""
    for operator in (":-", ":?", "-", "?"):
        if rest.startswith(operator):
            argument = interpolate(rest[len(operator) :], env)
            empty_counts = operator.startswith(":")
            missing = value is None or (empty_counts and value == "")
            if operator.endswith("-"):
                return argument if missing else str(value)
            if missing:
                raise InterpolationError(f"required variable {name} is missing: {argument}")
            return str(value)
    raise InterpolationError(f"unsupported expansion ${{{body}}}")


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Every string value of a loaded YAML document interpolated (keys are not)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    return node


def variables_used(text: str) -> set[str]:
    """Every variable a Compose file interpolates (``$$`` escapes excluded)."""
    text = text.replace("$$", "")
    return set(re.findall(r"\$\{?([_A-Za-z][_A-Za-z0-9]*)", text))


def read_env_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """``(active NAME=value pairs, every name shown, commented-out ones included)``."""
    active: dict[str, str] = {}
    named: set[str] = set()
    for line in path.read_text().splitlines():
        match = _ENV_LINE.match(line.strip())
        if match is None:
            continue
        commented, name, value = match.groups()
        named.add(name)
        if not commented:
            active[name] = value
    return active, named


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    rendered = interpolate_tree(loaded, env)
    assert isinstance(rendered, dict)
    return rendered


def service_environment(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """A service's container environment: a key without a value takes the project
    environment's value, or is left out when that has none (compose-spec ``environment``)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    resolved: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            if key in env:
                resolved[key] = env[key]
        else:
            resolved[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return resolved


@dataclass
class Stage:
    """One ``FROM`` of a Dockerfile and the instructions after it."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for word, args in self.instructions if word == keyword]


def dockerfile_stages(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """``(ARG defaults declared before the first FROM, stages)``; continuation lines joined,
    comments dropped, ``${ARG}`` in ``FROM`` resolved."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif keyword == "FROM":
            parts = rest.split()
            base = interpolate(parts[0], args)
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


_PINNED_TAG = re.compile(
    r"^(\d+\.\d+\.\d+([.-][0-9A-Za-z.-]+)?|RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)$"
)


_TWO_PART_VERSIONS = frozenset({"postgres"})
"""Images whose releases are numbered ``major.minor`` (PostgreSQL since 10: ``16.9`` is one
release, ``16`` floats)."""


def is_pinned(image: str) -> bool:
    """An image reference fixed to one release: a digest, or an exact release tag (``x.y.z``
    with an optional suffix such as ``-slim-bookworm``, MinIO's ``RELEASE.<timestamp>``,
    PostgreSQL's ``major.minor``); never ``latest`` or a floating ``16`` / ``24.8``."""
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return False
    if name in _TWO_PART_VERSIONS and re.match(r"^\d+\.\d+(-[0-9A-Za-z.-]+)?$", tag):
        return True
    return bool(_PINNED_TAG.match(tag))
