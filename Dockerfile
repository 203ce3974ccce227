# syntax=docker/dockerfile:1
#
# One image for every Python part of Driftwatch: the `driftwatch` command line (train, promote,
# rollback, versions), serving, the drift exporter, the rollback webhook, the local Slack sink, and
# the MLflow tracking server (the same MLflow version as its clients). docker-compose.yml picks the
# process with `command:`; `docker run --rm IMAGE driftwatch versions` works too.
#
# Health checks are declared per service in docker-compose.yml: one image serves on several ports,
# so a single HEALTHCHECK here would be wrong for all but one of them.

# ---------------------------------------------------------------- build: a virtualenv in /opt/venv
FROM python:3.11.13-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes, not on
# every code change (the empty packages only let setuptools resolve the project).
COPY pyproject.toml README.md ./
RUN mkdir serving drift_exporter rollback_webhook model_registry driftwatch monitoring quality \
    && touch serving/__init__.py drift_exporter/__init__.py rollback_webhook/__init__.py \
             model_registry/__init__.py driftwatch/__init__.py monitoring/__init__.py quality/__init__.py \
    && pip install --no-cache-dir . \
    && pip uninstall --yes driftwatch

COPY serving/ serving/
COPY drift_exporter/ drift_exporter/
COPY rollback_webhook/ rollback_webhook/
COPY model_registry/ model_registry/
COPY driftwatch/ driftwatch/
COPY monitoring/ monitoring/
COPY quality/ quality/
# pip compiles the bytecode now: the services run as a user who cannot write to /opt/venv, and
# MLflow, scikit-learn and SciPy would otherwise be compiled again at every start.
RUN pip install --no-cache-dir --no-deps .

# ---------------------------------------------------------------- runtime: no compilers, no pip cache
FROM python:3.11.13-slim-bookworm

LABEL org.opencontainers.image.title="driftwatch" \
      org.opencontainers.image.description="Watch a model in production and undo a bad release automatically." \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/driftwatch \
    DRIFTWATCH_HOME=/var/lib/driftwatch \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false

# A fixed numeric uid/gid, so compose can give secret files to it and volumes keep their owner.
# The data folders are created here, owned by that user: a new named volume mounted on them
# starts with this owner, so the services can write without running as root.
RUN groupadd --system --gid 10001 driftwatch \
    && useradd --system --uid 10001 --gid driftwatch --home-dir /var/lib/driftwatch \
               --no-create-home --shell /usr/sbin/nologin driftwatch \
    && mkdir -p /var/lib/driftwatch/predictions /var/lib/mlflow/backend /var/lib/mlflow/artifacts \
    && chown -R driftwatch:driftwatch /var/lib/driftwatch /var/lib/mlflow

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/healthcheck.py /usr/local/bin/driftwatch-healthcheck
COPY --chmod=0755 deploy/bootstrap_model.py /usr/local/bin/driftwatch-bootstrap-model

USER 10001:10001
WORKDIR /var/lib/driftwatch

# serving, drift exporter, rollback webhook, MLflow tracking server (ports: docs/contract.md)
EXPOSE 8000 9101 9102 9103 5000

CMD ["driftwatch", "--help"]
