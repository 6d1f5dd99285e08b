# reset-mailbot: slim runtime image. Config: mount /etc/reset-mailbot/reset-mailbot.toml or set
# RESET_MAILBOT_* environment variables; state (SQLite) lives in the /var/lib/reset-mailbot volume.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY rules ./rules
COPY migrations ./migrations
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RESET_MAILBOT_CONFIG=/etc/reset-mailbot/reset-mailbot.toml \
    RESET_MAILBOT_DATABASE__DATA_DIR=/var/lib/reset-mailbot
RUN useradd --system --uid 10001 --home-dir /var/lib/reset-mailbot --create-home mailbot \
    && mkdir -p /etc/reset-mailbot
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER mailbot
WORKDIR /var/lib/reset-mailbot
VOLUME ["/var/lib/reset-mailbot"]
EXPOSE 9464
ENTRYPOINT ["reset-mailbot"]
CMD ["run"]
