"""docker-compose.yml, .env.example, deploy/nginx.conf and the Dockerfile, checked offline.

What ``docker compose config`` would check (interpolation, the official Compose schema,
references between services, volumes and profiles) is done with the vendored schema and
tests/deployfiles.py; then what it cannot know: that the gateway's environment in compose is
exactly the set of variables the gateway reads, that it configures a complete server (every
store set, consistent with the services' own credentials), that .env.example names every
variable, that every image is pinned and only the gateway's port is published.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from yarl import URL

from gateway import logconfig
from gateway.cli import check_workers
from gateway.doctor import setting_variables
from gateway.settings import Settings
from gateway.store import generate_key
from logging_pipeline.remote import STOP_MARGIN_SECONDS
from tests.deployfiles import (
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    DOCKERFILE,
    ENV_EXAMPLE,
    NGINX_CONF,
    ROOT,
    InterpolationError,
    dockerfile_stages,
    interpolate,
    is_pinned,
    load_compose,
    read_env_file,
    service_environment,
    variables_used,
)

STORES = {
    "postgres": "/var/lib/postgresql/data",
    "clickhouse": "/var/lib/clickhouse",
    "minio": "/data",
    "redis": "/data",
    "gateway": "/data",
}


@pytest.fixture
def env() -> dict[str, str]:
    """The project environment of a first start: .env.example, with the one value it leaves
    for the operator to fill in."""
    active, _ = read_env_file(ENV_EXAMPLE)
    return {**active, "GATEWAY_ENCRYPTION_KEY": generate_key(), "OPENAI_API_KEY": "sk-test"}


@pytest.fixture
def compose(env: dict[str, str]) -> dict[str, Any]:
    return load_compose(env)


def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _active(compose: dict[str, Any], profiles: set[str]) -> dict[str, Any]:
    """The services ``docker compose --profile ...`` would start."""
    return {
        name: service
        for name, service in compose["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & profiles
    }


# --- what `docker compose config` checks --------------------------------------------------------


def test_interpolation_follows_the_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${NOPE-d} $SET $$SET", env) == (
        "v d  d v $SET"
    )
    assert interpolate("${NOPE:-${SET}/x}", env) == "v/x"
    with pytest.raises(InterpolationError, match="NOPE"):
        interpolate("${NOPE:?needed}", env)
    with pytest.raises(InterpolationError, match="EMPTY"):
        interpolate("${EMPTY:?needed}", env)
    assert interpolate("${EMPTY?needed}", env) == ""


def test_compose_file_is_valid_against_the_compose_schema(compose: dict[str, Any]) -> None:
    validator = _validator()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)
    # The validator does reject what compose rejects (so the check above can fail).
    broken = copy.deepcopy(compose)
    broken["services"]["gateway"]["restart_policy"] = "always"
    broken["services"]["redis"]["healthcheck"]["interval"] = 5
    assert len(list(validator.iter_errors(broken))) == 2


def test_the_encryption_key_is_required(env: dict[str, str]) -> None:
    """Like `docker compose up`, rendering stops with the file's own message when the operator
    has not set GATEWAY_ENCRYPTION_KEY (.env.example leaves it empty on purpose)."""
    env["GATEWAY_ENCRYPTION_KEY"] = ""
    with pytest.raises(InterpolationError, match=r"set GATEWAY_ENCRYPTION_KEY in \.env"):
        load_compose(env)


def test_references_between_services_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared_volumes = set(compose["volumes"])
    used_volumes: set[str] = set()
    for name, service in services.items():
        for target, condition in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            wanted = condition["condition"]
            if wanted == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            elif wanted == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must run once"
            # A service of the default profile never waits for one that may not run.
            if not service.get("profiles"):
                assert not services[target].get("profiles"), f"{name} -> {target}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith(("./", "/")):
                assert source in declared_volumes, f"{name}: undeclared volume {source}"
                used_volumes.add(source)
            else:
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    assert used_volumes == declared_volumes


def test_every_store_keeps_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    for name, path in STORES.items():
        mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"][name]["volumes"]}
        assert mounts.get(path) in compose["volumes"], f"{name}: {path} is not a named volume"


def test_start_order_is_health_gated(compose: dict[str, Any]) -> None:
    depends = compose["services"]["gateway"]["depends_on"]
    assert {name: c["condition"] for name, c in depends.items()} == {
        "postgres": "service_healthy",
        "clickhouse": "service_healthy",
        "redis": "service_healthy",
        "minio-init": "service_completed_successfully",
    }
    assert compose["services"]["minio-init"]["depends_on"]["minio"]["condition"] == (
        "service_healthy"
    )
    # The bucket the gateway writes to is the one minio-init creates.
    init_env = compose["services"]["minio-init"]["environment"]
    gateway_env = compose["services"]["gateway"]["environment"]
    assert init_env["S3_BUCKET_NAME"] == gateway_env["S3_BUCKET_NAME"]
    assert "mc mb" in compose["services"]["minio-init"]["command"][0]
    # The gateway's compose healthcheck asks /readyz (nginx starts once stores answer).
    assert "/readyz" in " ".join(compose["services"]["gateway"]["healthcheck"]["test"])


@pytest.mark.parametrize(
    ("profiles", "published"),
    [(set(), {"gateway"}), ({"replicas"}, {"gateway", "lb"})],
    ids=["default", "replicas"],
)
def test_only_the_gateway_port_is_published(
    compose: dict[str, Any], profiles: set[str], published: set[str]
) -> None:
    active = _active(compose, profiles)
    assert {name for name, s in active.items() if s.get("ports")} == published
    assert compose["services"]["gateway"]["ports"] == ["8787:8787"]


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["build"] == "."
            assert not service["image"].endswith(":latest")
            continue
        assert is_pinned(service["image"]), f"{name}: {service['image']} is not pinned"
    _, stages = dockerfile_stages()
    assert all(is_pinned(stage.base) for stage in stages), [s.base for s in stages]
    # The rule itself.
    assert not is_pinned("postgres:16") and not is_pinned("minio/minio:latest")
    assert not is_pinned("redis:7.4") and is_pinned("postgres:16.9")
    assert not is_pinned("clickhouse/clickhouse-server:24.8") and not is_pinned("redis")
    assert is_pinned("redis@sha256:" + "a" * 64)


# --- the gateway's environment against its settings --------------------------------------------


def test_gateway_environment_is_exactly_what_the_gateway_reads(compose: dict[str, Any]) -> None:
    """No variable the gateway would ignore, none it reads left out (each is set here or
    passed through from .env)."""
    reads = set(setting_variables())
    for name in ("gateway", "gateway-replica"):
        given = set(compose["services"][name]["environment"])
        assert given - reads == set(), f"{name}: the gateway ignores {sorted(given - reads)}"
        assert reads - given == set(), f"{name}: not passed on: {sorted(reads - given)}"


def test_the_stop_grace_period_covers_the_gateway_shutdown(
    compose: dict[str, Any], env: dict[str, str]
) -> None:
    """``docker compose stop`` kills the gateway stop_grace_period after SIGTERM: enough for
    the in-flight streams, the log writer's drain and its stores' closing."""
    gateway = compose["services"]["gateway"]
    period = re.fullmatch(r"(\d+)s", gateway["stop_grace_period"])
    assert period is not None, gateway["stop_grace_period"]

    def needed(project: dict[str, str]) -> int:
        given = {
            name.removeprefix("GATEWAY_").lower(): value
            for name, value in service_environment(gateway, project).items()
            if name.startswith("GATEWAY_SHUTDOWN_")
        }
        settings = Settings(_env_file=None, **given)  # type: ignore[call-arg]
        return (
            settings.shutdown_grace_seconds
            + settings.shutdown_log_drain_seconds
            + STOP_MARGIN_SECONDS
        )

    assert int(period.group(1)) >= needed(env)
    # The settings passed through from .env count (so a raised grace fails this check).
    assert int(period.group(1)) < needed({**env, "GATEWAY_SHUTDOWN_GRACE_SECONDS": "120"})


def test_env_example_names_every_variable(compose: dict[str, Any]) -> None:
    _, named = read_env_file(ENV_EXAMPLE)
    reads = set(setting_variables())
    interpolated = variables_used(COMPOSE_FILE.read_text())
    assert reads - named == set(), f".env.example does not name {sorted(reads - named)}"
    assert interpolated - named == set(), f"not in .env.example: {sorted(interpolated - named)}"
    unknown = named - reads - interpolated
    assert unknown == set(), f".env.example names what nothing reads: {sorted(unknown)}"


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    import os

    for variable in setting_variables():
        monkeypatch.delenv(variable, raising=False)
    for variable in list(os.environ):
        if variable.startswith("GATEWAY_"):
            monkeypatch.delenv(variable)
    yield monkeypatch


def test_compose_configures_a_complete_server(
    compose: dict[str, Any], env: dict[str, str], clean_environ: pytest.MonkeyPatch
) -> None:
    """The gateway's settings from its compose environment: every store is a server, the
    server checks `gateway serve` makes pass (without chdb, as in the image), and each URL
    points at the compose service, with that service's own credentials."""
    services = compose["services"]
    container_env = service_environment(services["gateway"], env)
    for key, value in container_env.items():
        clean_environ.setenv(key, value)
    settings = Settings()
    clean_environ.setattr(logconfig, "embedded_available", lambda: False)

    assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
    assert settings.encryption_key is not None
    assert logconfig.log_store_problem(settings) is None
    assert logconfig.log_config(settings).body_store.s3 is not None
    assert settings.workers == 2
    check_workers(settings, settings.workers)  # several workers: needs a ClickHouse server
    assert settings.provider_api_keys == {"openai": "sk-test"}
    assert (settings.host, settings.port, str(settings.data_dir)) == ("0.0.0.0", 8787, "/data")

    database = URL(settings.database_url or "")
    postgres = services["postgres"]["environment"]
    assert (database.host, database.port, database.path) == ("postgres", 5432, "/gateway")
    assert (database.user, database.password) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"]
    )  # fmt: skip
    clickhouse = URL(settings.clickhouse_url or "")
    server = services["clickhouse"]["environment"]
    assert (clickhouse.host, clickhouse.port) == ("clickhouse", 8123)
    assert (clickhouse.user, clickhouse.password) == (
        server["CLICKHOUSE_USER"], server["CLICKHOUSE_PASSWORD"]
    )  # fmt: skip
    minio = services["minio"]["environment"]
    assert URL(settings.s3_endpoint or "").host == "minio"
    assert (settings.s3_access_key, settings.s3_secret_key) == (
        minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"]
    )  # fmt: skip
    assert URL(settings.redis_url or "").host == "redis"


def test_replicas_share_the_gateways_configuration(compose: dict[str, Any]) -> None:
    gateway, replica = compose["services"]["gateway"], compose["services"]["gateway-replica"]
    assert replica["environment"] == gateway["environment"]
    assert replica["volumes"] == gateway["volumes"]
    assert replica["image"] == gateway["image"]
    assert int(replica["deploy"]["replicas"]) >= 2
    assert "ports" not in replica


# --- nginx -------------------------------------------------------------------------------------


def test_nginx_balances_over_both_gateway_services(compose: dict[str, Any]) -> None:
    conf = "\n".join(line.split("#", 1)[0] for line in NGINX_CONF.read_text().splitlines())
    upstream = re.search(r"upstream gateway \{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = re.findall(r"server ([\w-]+):(\d+)", upstream.group(1))
    assert {name for name, _ in servers} == {"gateway", "gateway-replica"}
    assert {int(port) for _, port in servers} == {8787}
    assert all(name in compose["services"] for name, _ in servers)
    lb = compose["services"]["lb"]
    assert lb["ports"] == ["8080:8080"] and "listen 8080;" in conf
    assert "proxy_buffering off;" in conf  # streams are not held back
    assert "non_idempotent" not in conf  # a sent POST is never replayed on another replica
    health = lb["healthcheck"]["test"][-1]
    assert URL(health).path in conf


# --- the Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_lean_and_unprivileged() -> None:
    _, stages = dockerfile_stages()
    assert len(stages) >= 2
    build, final = stages[0], stages[-1]
    assert final.base == build.base  # the same pinned base, without what the build added
    # Only the virtualenv comes from the build stage; nothing is installed in the final one.
    copies = final.all("COPY")
    assert copies == ["--from=build /opt/gateway /opt/gateway"]
    runs = " ".join(final.all("RUN"))
    for tool in ("apt-get", "pip ", "gcc", "build-essential", "make "):
        assert tool not in runs, f"the final stage runs {tool!r}"
    user = final.all("USER")
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert "/healthz" in final.all("HEALTHCHECK")[0]
    assert final.all("ENTRYPOINT") == ['["gateway"]'] and final.all("CMD") == ['["serve"]']
    # The build installs only hashed pins from the runtime lock, binary wheels only.
    install = next(r for r in build.all("RUN") if "requirements.lock" in r)
    assert "--require-hashes" in install and "--only-binary=:all:" in install
    env = " ".join(final.all("ENV"))
    assert "GATEWAY_HOST=0.0.0.0" in env and "GATEWAY_DATA_DIR=/data" in env


def test_the_image_leaves_the_embedded_engine_out() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    assert not re.search(r"^chdb", lock, re.M), "chdb must stay out of the runtime lock"
    dev_lock = (ROOT / "requirements-dev.lock").read_text()
    assert re.search(r"^chdb==", dev_lock, re.M), "make install (the dev lock) brings chdb"


def test_dockerignore_keeps_secrets_and_data_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines  # everything is excluded unless named
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "requirements.lock", "pyproject.toml", "README.md",
        "gateway", "providers", "logging_pipeline", "cache", "ratelimit",
    }  # fmt: skip
    copied = {
        part.rstrip("/").removeprefix("./")
        for stage in dockerfile_stages(DOCKERFILE)[1]
        for line in stage.all("COPY")
        if not line.startswith("--from")
        for part in line.split()[:-1]
    }
    assert copied <= allowed
