# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
# `embedded` lets the image run with nothing configured; production sets MONGODB_URL.
ARG EXTRAS=embedded
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[${EXTRAS}]"

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 gigql
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/* && rm -rf /wheels
USER gigql
WORKDIR /home/gigql
ENV GIGQL_HOST=0.0.0.0 \
    GIGQL_PORT=8000 \
    GIGQL_DATA_DIR=/home/gigql/data \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['GIGQL_PORT'], timeout=2)"]
CMD ["gigql", "serve"]
