# The server's container image. docs/container.md: build, run, volumes, settings, health, signals.
#
#   docker build -t waypost .            (or: buildah bud --format docker -t waypost .)
#   docker run -p 3333:3333 -v waypost-data:/data waypost
#
# BASE: any image with Python >= 3.11 (with venv) at `python3`. The default is the public Python
# image; the test suite passes a Debian bookworm base it builds offline (tests/container).
# PIP_ARGS: extra `pip install` arguments, e.g. "--no-index --find-links /wheels" for a wheelhouse
# mounted into the build (`buildah bud --volume ...`) where no package index is reachable.
ARG BASE=python:3.11-slim-bookworm

# --- builder: a virtual environment with the pinned dependencies and the project ----------------
FROM ${BASE} AS builder
ARG PIP_ARGS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/waypost
# The lock file alone first: this layer stays cached while only the code changes.
COPY requirements/runtime.lock /src/requirements/runtime.lock
RUN /opt/waypost/bin/pip install $PIP_ARGS --requirement /src/requirements/runtime.lock
# README and LICENSE (once they exist) for the package metadata; `LICENS[E]` matches none or one.
COPY pyproject.toml README.md LICENS[E] /src/
COPY waypost /src/waypost
# pip installs byte-code compiled; pip itself is not needed at run time.
RUN /opt/waypost/bin/pip install $PIP_ARGS --no-deps /src \
 && /opt/waypost/bin/pip uninstall --quiet --yes pip setuptools \
 && /opt/waypost/bin/waypost --version

# --- final: the base, the virtual environment, an unprivileged user, a data volume -------------
FROM ${BASE}
LABEL org.opencontainers.image.title="waypost" \
      org.opencontainers.image.description="Outbound webhooks and event destinations, speaking Hookdeck Outpost's API" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 waypost \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /data \
      --shell /usr/sbin/nologin waypost \
 && mkdir -p /data && chown 10001:10001 /data && chmod 0700 /data
COPY --from=builder /opt/waypost /opt/waypost
ENV PATH=/opt/waypost/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    OUTPOST_DATA_DIR=/data
# Embedded mode keeps its SQLite database and generated keys here (PostgreSQL mode does not use it).
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 3333
# Python's standard library only: no curl in the image. Every process (SERVICE=api, delivery or
# all) answers /healthz on its port; 503 (a dependency down) or no answer counts as unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import os, sys, urllib.request; port = os.environ.get('API_PORT') or os.environ.get('PORT') or '3333'; sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status != 200)"]
# Exec form: the server is PID 1 and gets SIGTERM itself; it stops taking requests, drains the
# deliveries in flight and exits 0.
STOPSIGNAL SIGTERM
CMD ["waypost", "serve"]
