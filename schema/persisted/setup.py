"""Each graph's persisted documents, as the settings describe them."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from documents.settings import Settings
from schema.persisted.manifest import Manifest, load_manifest
from schema.persisted.policy import PersistedDocuments
from schema.persisted.shared import SharedQueries
from schema.schema import GigqlSchema


def persisted_documents(
    schema: GigqlSchema,
    settings: Settings,
    *,
    graph: str,
    redis: Redis | RedisCluster | None = None,
    trusted: bool = True,
) -> PersistedDocuments:
    """The graph's manifest (when `trusted` and the mode is not `off`; ManifestError if it
    cannot be served), its APQ texts (shared through `redis` when given), its mode.

    The partner graph is not `trusted`: its callers are partners' servers, each
    authenticated by its API key and counted against the key's budgets, running queries
    their own developers write; no front end of ours is built for it, so it has no
    manifest and no `only` mode, and takes any text."""
    use_manifest = trusted and settings.trusted_documents_mode != "off"
    manifest = (
        load_manifest(settings.trusted_documents, schema._schema, schema.documents)
        if use_manifest
        else Manifest()
    )
    apq = settings.persisted_queries_enabled
    shared = (
        SharedQueries(
            redis,
            graph,
            ttl_seconds=max(int(settings.persisted_queries_ttl.total_seconds()), 1),
            budget=settings.persisted_queries_shared_bytes,
        )
        if apq and redis is not None
        else None
    )
    return PersistedDocuments(
        schema.documents,
        apq=apq,
        manifest=manifest,
        only=use_manifest and settings.trusted_documents_mode == "only",
        exempt_admins=settings.trusted_documents_exempt_admins,
        shared=shared,
    )
