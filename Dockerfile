# The gateway's server image: the gateway and its runtime dependencies from the hashed lock,
# nothing else. The embedded log engine (chdb, ~500 MB) is left out: a server names its stores
# (CLICKHOUSE_URL, S3_*, DATABASE_URL, REDIS_URL; see docker-compose.yml and .env.example), and
# `gateway serve` refuses to start, saying so, when request logging has no store.
#
# Two stages: `build` installs into a virtualenv; the final stage copies only that virtualenv
# onto the same slim base, so no pip cache, build backend or source tree ships. Every wheel in
# requirements.lock is a binary wheel for CPython 3.11 on Linux x86_64 (--only-binary), so
# neither stage needs a compiler. The base is pinned to an exact release; pin its digest too
# where your registry policy asks for it (`docker buildx imagetools inspect <image>`).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/gateway
ENV PATH=/opt/gateway/bin:$PATH
WORKDIR /src
# Only pinned, hashed artifacts from the runtime lock (which also pins the build backend), so a
# rebuild cannot pick up a new or tampered release; then the project itself, with no resolution.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY providers ./providers
COPY logging_pipeline ./logging_pipeline
COPY cache ./cache
COPY ratelimit ./ratelimit
RUN pip install --no-deps --no-build-isolation . \
    && pip uninstall --yes setuptools wheel \
    && python -m compileall -q /opt/gateway/lib

FROM ${PYTHON_IMAGE}
# A fixed, unprivileged user: the data volume and Kubernetes' runAsUser agree on 10001.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin gateway \
    && mkdir -p /data && chown gateway:gateway /data && chmod 0700 /data
COPY --from=build /opt/gateway /opt/gateway
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8787 GATEWAY_DATA_DIR=/data
USER 10001:10001
WORKDIR /data
# The record journal (requests not yet written to the log store) and caches: keep it on a
# volume so a restarted container replays what its predecessor had not written.
VOLUME ["/data"]
EXPOSE 8787
# `gateway serve` drains on SIGTERM; give it the time (compose: stop_grace_period).
STOPSIGNAL SIGTERM
# Liveness only (/healthz: the process answers). Readiness (/readyz: the stores answer) is for
# load balancers and Kubernetes' readinessProbe, not for restarting the container.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8787'), timeout=2)"]
# `gateway serve` applies pending migrations once (in the parent, under a database lock, so
# replicas starting together apply each exactly once), then starts GATEWAY_WORKERS workers.
# Other commands run the same image: `docker run IMAGE doctor`, `... keys create`.
ENTRYPOINT ["gateway"]
CMD ["serve"]
