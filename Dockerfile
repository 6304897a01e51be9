# The gateway image: one process (uvicorn workers inside), configured by environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8787 GATEWAY_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY providers ./providers
COPY logging_pipeline ./logging_pipeline
COPY cache ./cache
COPY ratelimit ./ratelimit
RUN pip install --no-cache-dir . && mkdir -p /data

VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"GATEWAY_PORT\",\"8787\")}/healthz')"
CMD ["gateway", "serve"]
