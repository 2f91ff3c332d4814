# syntax=docker/dockerfile:1
# One pinned base for both stages: the wheels built in the first are installed in the
# second, so they must agree on Python, and a rebuild must not move to another release.
ARG PYTHON_IMAGE=python:3.11.16-slim-trixie

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# .dockerignore keeps `.env`, the data folder, tests and caches out of the context.
COPY . .
# `embedded` lets the image run with nothing configured; production sets MONGODB_URL.
ARG EXTRAS=embedded
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[${EXTRAS}]"

FROM ${PYTHON_IMAGE}
# A fixed, numeric uid and gid, so `USER` needs no passwd lookup and volume owners are
# the same on every host. The data folder is the owner's alone (a volume mounted there
# starts out the same).
RUN groupadd --gid 10001 gigql \
    && useradd --create-home --uid 10001 --gid 10001 gigql \
    && install -d -m 0700 -o gigql -g gigql /home/gigql/data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/* && rm -rf /wheels
USER 10001:10001
WORKDIR /home/gigql
# Production: no GraphiQL, introspection or sandbox payments on the network, and no start
# without GIGQL_JWT_SECRET, nor without STRIPE_SECRET_KEY unless
# GIGQL_ALLOW_SANDBOX_PAYMENTS=true, nor without the VAPID key pair and subject unless
# GIGQL_PUSH_BACKEND=log. No secret is set here: they come from the environment at run time.
ENV GIGQL_ENVIRONMENT=production \
    GIGQL_HOST=0.0.0.0 \
    GIGQL_PORT=8000 \
    GIGQL_DATA_DIR=/home/gigql/data \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['GIGQL_PORT'], timeout=2)"]
CMD ["gigql", "serve"]
