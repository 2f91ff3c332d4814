"""Tests of the GraphQL API's edge: HTTP, limits, rate limits, bad bytes, input checks, cursors."""
