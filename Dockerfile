# Ritmo: gunicorn serving the Flask app, as a non-root user, with git and gnupg.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ritmo
ENV PATH=/opt/ritmo/bin:$PATH
WORKDIR /app
# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
COPY bot ./bot
COPY templates ./templates
COPY policies ./policies
# Editable, so bot/ finds templates/ and policies/ beside it in /app.
RUN pip install --no-deps -e .

FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git gnupg gpg-agent openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 ritmo \
 && mkdir -p /var/lib/ritmo && chown ritmo:ritmo /var/lib/ritmo
COPY --from=build /opt/ritmo /opt/ritmo
COPY --from=build /app /app
ENV PATH=/opt/ritmo/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RITMO_DATA_DIR=/var/lib/ritmo \
    PROMETHEUS_MULTIPROC_DIR=/var/lib/ritmo/prometheus
USER ritmo
WORKDIR /var/lib/ritmo
EXPOSE 8080
# Configure with RITMO_CONFIG or RITMO_* (manifests.url, signing.key, signing.gnupghome, ...).
# Without them the worker refuses to boot with one line naming the setting to set.
# More workers: GUNICORN_CMD_ARGS="--workers 4". /metrics sums them through the files in
# PROMETHEUS_MULTIPROC_DIR, emptied at each start. More replicas: one RITMO_DATABASE_URL
# (PostgreSQL) for all of them.
CMD ["sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" \
     && exec gunicorn --bind 0.0.0.0:8080 --worker-class gthread --threads 64 --timeout 300 \
        --access-logfile - 'bot.app:create_app_from_env()'"]
