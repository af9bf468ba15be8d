# deptbot: `deptbot serve` for Slack and Teams, as a non-root user, state on a volume.
#   docker build -t deptbot:0.1.0 .
#   docker run -p 3978:3978 --env-file .env -v deptbot-state:/var/lib/deptbot \
#     -v "$PWD/departments:/srv/deptbot/departments:ro" -v "$PWD/knowledge:/srv/deptbot/knowledge:ro" deptbot:0.1.0
# compose.yaml runs two such replicas on PostgreSQL. Configuration and documents are mounted, never baked in;
# secrets come from the environment at run time, never from this file.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/deptbot
WORKDIR /src
# the dependencies first: they change less often than the code
COPY pyproject.toml setup.py README.md ./
COPY bot ./bot
COPY manifest ./manifest
# a regular (not editable) install: the wheel carries settings.toml and manifest/ as bot/_manifest;
# the postgres extra (psycopg with its bundled libpq) lets DEPTBOT_DATABASE_URL switch the backend
RUN /opt/deptbot/bin/pip install ".[postgres]" \
    && /opt/deptbot/bin/deptbot --version

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/deptbot/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DEPTBOT_STATE=/var/lib/deptbot \
    DEPTBOT_DEPARTMENTS=/srv/deptbot/departments
# uid/gid 10001 (numeric below, so Kubernetes runAsNonRoot can verify it)
RUN groupadd --system --gid 10001 deptbot \
    && useradd --system --uid 10001 --gid deptbot --home-dir /var/lib/deptbot --shell /usr/sbin/nologin deptbot \
    && mkdir -p /var/lib/deptbot /srv/deptbot/departments /srv/deptbot/knowledge \
    && chown deptbot:deptbot /var/lib/deptbot \
    && chmod 0700 /var/lib/deptbot
COPY --from=build /opt/deptbot /opt/deptbot
USER 10001:10001
WORKDIR /srv/deptbot
# indexes, audit, usage and conversation databases: restricted text, kept across restarts
VOLUME ["/var/lib/deptbot"]
EXPOSE 3978
# liveness only (constant time, no I/O); /readyz is for load balancers and orchestrators.
# The start period covers the indexing `deptbot serve` does before it listens.
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3978/livez', timeout=4)"]
ENTRYPOINT ["deptbot"]
CMD ["serve", "--host", "0.0.0.0", "--port", "3978"]
