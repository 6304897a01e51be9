# The gateway image: one process (uvicorn workers inside), configured by environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8787 GATEWAY_DATA_DIR=/data

WORKDIR /app
# Only pinned, hashed artifacts from the runtime lock (which also pins the build backend), so a
# rebuild cannot pick up a new or tampered release; then the project itself, with no resolution.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY providers ./providers
COPY logging_pipeline ./logging_pipeline
COPY cache ./cache
COPY ratelimit ./ratelimit
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && mkdir -p /data

VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"GATEWAY_PORT\",\"8787\")}/healthz')"
CMD ["gateway", "serve"]
