"""Tests of the gateway's webhooks."""
