FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor monitor
COPY detectors detectors
COPY alerts alerts
COPY runbooks runbooks
COPY schemas schemas
RUN pip install --no-cache-dir . && useradd --uid 10001 --no-create-home agentmon \
    && mkdir -p /var/lib/agentmon && chown agentmon /var/lib/agentmon  # the alert pipeline's notification log
USER agentmon
EXPOSE 6066 6068
CMD ["agentmon", "worker"]
