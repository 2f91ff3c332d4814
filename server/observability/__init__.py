"""Metrics for Prometheus (`/metrics`) and traces for OpenTelemetry: README "Metrics and
traces". The metric families themselves are in documents/metrics.py."""
