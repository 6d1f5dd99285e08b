# reset-mailbot: slim runtime image. Config: mount /etc/reset-mailbot/reset-mailbot.toml or set
# RESET_MAILBOT_* environment variables; state (SQLite) lives in the /var/lib/reset-mailbot volume.
# The schema is upgraded by `db upgrade` (deploy/compose.yaml runs it as a one-shot service
# before the daemons; Kubernetes: an init container, deploy/kubernetes.yaml).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY rules ./rules
COPY migrations ./migrations
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /wheels .

FROM python:3.11-slim-bookworm
# /metrics and /healthz listen on every interface of the container (the default, 127.0.0.1,
# is unreachable from outside it); publish the port only where Prometheus needs it. The same
# for the support console (`console`, or `run` with [console] with_daemon) on 8080: publish it
# only to the TLS proxy in front of it (docs/console.md)
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RESET_MAILBOT_CONFIG=/etc/reset-mailbot/reset-mailbot.toml \
    RESET_MAILBOT_DATABASE__DATA_DIR=/var/lib/reset-mailbot \
    RESET_MAILBOT_METRICS__LISTEN=0.0.0.0:9464 \
    RESET_MAILBOT_CONSOLE__LISTEN=0.0.0.0:8080
RUN useradd --system --uid 10001 --home-dir /var/lib/reset-mailbot --create-home mailbot \
    && mkdir -p /etc/reset-mailbot
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER mailbot
WORKDIR /var/lib/reset-mailbot
VOLUME ["/var/lib/reset-mailbot"]
EXPOSE 9464 8080
# healthy: the leader polled within 3 poll intervals, or a standby's heartbeat reaches the
# database (no curl in the slim image: Python's own urllib)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["reset-mailbot"]
CMD ["run"]
