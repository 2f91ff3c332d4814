"""Tests of notifications beyond the app: preferences, quiet hours and unsubscribing."""
