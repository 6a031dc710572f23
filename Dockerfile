# Ritmo: gunicorn serving the Flask app, as a non-root user, with git and gnupg.
# The image holds the installed wheel (templates/ and policies/ inside the package), never
# the source tree, and no editable install.

# 1. The wheel, built from the source.
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY templates ./templates
COPY policies ./policies
RUN pip wheel --no-deps --wheel-dir /dist .

# 2. A venv with the dependencies, then the wheel.
FROM python:3.11-slim AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ritmo
# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/ritmo/bin/pip install -r /tmp/requirements.txt
COPY --from=wheel /dist /dist
RUN /opt/ritmo/bin/pip install /dist/ritmo-*.whl

# 3. The runtime: the venv alone, beside git and gnupg.
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git gnupg gpg-agent openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 ritmo \
 && useradd --create-home --uid 10001 --gid 10001 ritmo \
 && mkdir -p /var/lib/ritmo && chown ritmo:ritmo /var/lib/ritmo
COPY --from=venv /opt/ritmo /opt/ritmo
ENV PATH=/opt/ritmo/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RITMO_DATA_DIR=/var/lib/ritmo \
    RITMO_LISTEN=0.0.0.0:8080
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /var/lib/ritmo
EXPOSE 8080
# `ritmo serve`: settings checked once (a bad one stops it with one line naming it), then
# gunicorn. Configure with RITMO_CONFIG or RITMO_* (manifests.url, signing.key,
# signing.gnupghome, ...); with nothing configured it sets itself up in /var/lib/ritmo, as
# on a laptop. More workers: RITMO_WORKERS (/metrics sums them). More replicas: one
# RITMO_DATABASE_URL (PostgreSQL) for all of them. Kubernetes: templates/kubernetes/.
CMD ["ritmo", "serve"]
