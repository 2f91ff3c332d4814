"""Tests of notifications beyond the app: the outbox, channels, preferences and schedules."""
