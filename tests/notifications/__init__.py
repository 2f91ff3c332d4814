"""Tests of notifications beyond the app."""
