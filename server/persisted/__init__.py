"""Persisted queries and trusted documents on `/graphql` (schema/persisted/ decides)."""
